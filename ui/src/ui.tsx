// Small pieces every page uses: a modal dialog that keeps focus inside it,
// a confirm dialog, and a labelled field with its error.

import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef } from "preact/hooks";

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** The value of the input an event came from. */
export function valueOf(e: Event): string {
  return (e.currentTarget as HTMLInputElement).value;
}

export function checkedOf(e: Event): boolean {
  return (e.currentTarget as HTMLInputElement).checked;
}

type DialogProps = {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testid?: string;
};

/**
 * A modal dialog: focus moves into it and stays there (Tab wraps), Escape
 * closes it, and focus goes back where it was when it closes.
 */
export function Dialog({ title, onClose, children, testid }: DialogProps) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  const close = useRef(onClose);
  close.current = onClose;

  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const box = ref.current;
    if (box) {
      const first = box.querySelector<HTMLElement>("[data-autofocus]") ?? box.querySelector<HTMLElement>(FOCUSABLE);
      (first ?? box).focus();
    }
    return () => before?.focus?.();
  }, []);

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close.current();
      return;
    }
    if (e.key !== "Tab" || !ref.current) return;
    const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement;
    if (e.shiftKey && (active === first || active === ref.current)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  }

  return (
    <div class="backdrop">
      <div
        class="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        tabIndex={-1}
        ref={ref}
        onKeyDown={onKeyDown}
        data-testid={testid}
      >
        <h2 id={titleId}>{title}</h2>
        {children}
      </div>
    </div>
  );
}

type ConfirmProps = {
  title: string;
  children: ComponentChildren;
  ok: string;
  cancel?: string;
  danger?: boolean;
  busy?: boolean;
  onOk: () => void;
  onCancel: () => void;
  testid?: string;
  okTestid?: string;
  cancelTestid?: string;
};

export function Confirm(p: ConfirmProps) {
  return (
    <Dialog title={p.title} onClose={p.onCancel} testid={p.testid}>
      {p.children}
      <div class="actions">
        <button type="button" data-testid={p.cancelTestid ?? "confirm-cancel"} onClick={p.onCancel} data-autofocus>
          {p.cancel ?? "Cancel"}
        </button>
        <button
          type="button"
          class={p.danger ? "danger" : "primary"}
          data-testid={p.okTestid ?? "confirm-ok"}
          disabled={p.busy}
          onClick={p.onOk}
        >
          {p.ok}
        </button>
      </div>
    </Dialog>
  );
}

type FieldProps = {
  label: string;
  testid: string;
  value: string;
  onInput: (v: string) => void;
  error?: string | undefined;
  hint?: ComponentChildren;
  type?: "text" | "password";
  placeholder?: string;
  autocomplete?: string;
  inputMode?: "numeric" | "text" | "url";
  multiline?: boolean;
  mono?: boolean;
  disabled?: boolean;
};

/** A labelled input, its hint, and its error as `error-<testid>`. */
export function Field(p: FieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errId = `${id}-err`;
  const described = [p.hint ? hintId : "", p.error ? errId : ""].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    "data-testid": p.testid,
    value: p.value,
    placeholder: p.placeholder,
    disabled: p.disabled,
    "aria-invalid": p.error ? ("true" as const) : undefined,
    "aria-describedby": described,
    class: p.mono ? "mono" : undefined,
    spellcheck: false,
    onInput: (e: Event) => p.onInput(valueOf(e)),
  };
  return (
    <div class="field">
      <label for={id}>{p.label}</label>
      {p.multiline ? (
        <textarea rows={4} {...common} />
      ) : (
        p.type === "password" ? (
          <input {...common} type="password" autocomplete={p.autocomplete ?? "off"} />
        ) : (
          <input
            {...common}
            type="text"
            autocomplete={p.autocomplete ?? "off"}
            inputMode={p.inputMode}
            autocapitalize="off"
          />
        )
      )}
      {p.hint && (
        <p class="hint" id={hintId}>
          {p.hint}
        </p>
      )}
      {p.error && (
        <p class="error" id={errId} data-testid={`error-${p.testid}`} role="alert">
          {p.error}
        </p>
      )}
    </div>
  );
}

type CheckProps = {
  label: ComponentChildren;
  testid: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  hint?: ComponentChildren;
  role?: "switch";
};

export function Check(p: CheckProps) {
  const id = useId();
  return (
    <div class="check">
      <input
        type="checkbox"
        id={id}
        role={p.role}
        data-testid={p.testid}
        checked={p.checked}
        aria-describedby={p.hint ? `${id}-hint` : undefined}
        onChange={(e) => p.onChange(checkedOf(e))}
      />
      <label for={id}>{p.label}</label>
      {p.hint && (
        <p class="hint" id={`${id}-hint`}>
          {p.hint}
        </p>
      )}
    </div>
  );
}
