// The add-a-drive wizard: 1 kind of store, 2 its details and a connection
// test, 3 the vault (new or existing), 4 the drive on this device, and
// 5 the recovery key of a new vault, shown once.
//
// The checks and the store address live in wizard.ts; the form's state and
// the calls to the shell in add/state.ts; each step's fields in
// add/*-step.tsx. This file is the frame: the step list, the step's title,
// its error and the buttons.

import { useLayoutEffect, useRef } from "preact/hooks";
import type { Ctx } from "../app";
import { DriveStep } from "./add/drive-step";
import { KindStep } from "./add/kind-step";
import { RecoveryStep } from "./add/recovery-step";
import { useAddDrive, type Step, type Wizard } from "./add/state";
import { StoreStep } from "./add/store-step";
import { VaultStep } from "./add/vault-step";

const STEPS = ["Store", "Details", "Vault", "Drive", "Recovery key"];

const TITLES = [
  "Where should the drive keep its files?",
  "Connect to the store",
  "The vault",
  "The drive on this device",
  "Save your recovery key",
];

export function AddDrive(ctx: Ctx) {
  const w = useAddDrive(ctx);
  const { step, stepError } = w;
  const heading = useRef<HTMLHeadingElement>(null);

  // A new step moves focus to its heading, so keyboard and screen reader
  // users start at its top. A layout effect runs in the render's own commit:
  // focus is never taken back from a field chosen right after.
  const firstStep = useRef(true);
  useLayoutEffect(() => {
    if (firstStep.current) {
      firstStep.current = false;
      return;
    }
    heading.current?.focus();
  }, [step]);

  return (
    <section aria-labelledby="add-title" class="wizard">
      <h1 id="add-title" tabIndex={-1}>
        Add a drive
      </h1>
      <ol class="steps" aria-label="Steps">
        {STEPS.map((label, i) => (
          <li
            key={label}
            class={i + 1 === step ? "current" : i + 1 < step ? "past" : ""}
            aria-current={i + 1 === step ? "step" : undefined}
          >
            <span class="num" aria-hidden="true">
              {i + 1}
            </span>
            {label}
          </li>
        ))}
      </ol>
      <h2 ref={heading} tabIndex={-1} class="step-title">
        {TITLES[step - 1]}
      </h2>

      {step === 1 && <KindStep w={w} />}
      {step === 2 && <StoreStep w={w} />}
      {step === 3 && <VaultStep w={w} />}
      {step === 4 && <DriveStep w={w} />}
      {step === 5 && w.recovery && <RecoveryStep w={w} recovery={w.recovery} />}

      {stepError && stepError.step === step && (
        <div class="error-box" data-testid="wizard-error" role="alert">
          {stepError.text}
        </div>
      )}

      <Buttons w={w} />
    </section>
  );
}

/** Back, and the step's way on: Next, Finish or Done. */
function Buttons({ w }: { w: Wizard }) {
  const { step } = w;
  return (
    <div class="wizard-buttons">
      {step >= 2 && step <= 4 && (
        <button type="button" data-testid="wizard-back" onClick={() => w.goStep((step - 1) as Step)}>
          Back
        </button>
      )}
      {step === 1 && (
        <button type="button" class="primary" data-testid="wizard-next" onClick={() => w.goStep(2)}>
          Next
        </button>
      )}
      {step === 2 && (
        <button
          type="button"
          class="primary"
          data-testid="wizard-next"
          disabled={!w.store.tested}
          title={w.store.tested ? undefined : "Test the connection first"}
          onClick={() => w.goStep(3)}
        >
          Next
        </button>
      )}
      {step === 3 && (
        <button type="button" class="primary" data-testid="wizard-next" onClick={() => void w.vaultNext()}>
          Next
        </button>
      )}
      {step === 4 && (
        <button
          type="button"
          class="primary"
          data-testid="wizard-finish"
          disabled={w.finishing}
          onClick={() => void w.finish()}
        >
          {w.finishing ? (w.vault.mode === "create" ? "Creating the vault…" : "Adding…") : "Finish"}
        </button>
      )}
      {step === 5 && (
        <button type="button" class="primary" data-testid="recovery-done" disabled={!w.saved} onClick={w.done}>
          Done
        </button>
      )}
    </div>
  );
}
