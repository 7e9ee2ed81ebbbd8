// Step 5 of the add-a-drive wizard: the new vault's recovery key, shown once.

import { Check } from "../../ui";
import type { Recovery, Wizard } from "./state";

export function RecoveryStep({ w, recovery }: { w: Wizard; recovery: Recovery }) {
  async function copyKey() {
    try {
      await navigator.clipboard.writeText(recovery.key);
      w.setCopied(true);
    } catch {
      // Without clipboard access, select the key so Ctrl+C copies it.
      const el = document.querySelector('[data-testid="recovery-key"]');
      if (el) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const sel = window.getSelection();
        sel?.removeAllRanges();
        sel?.addRange(range);
      }
    }
  }

  return (
    <div class="recovery">
      <p>{recovery.text}</p>
      <pre class="mono key" data-testid="recovery-key" tabIndex={0} aria-label="Recovery key">
        {recovery.key}
      </pre>
      <p>
        <button type="button" data-testid="recovery-copy" onClick={copyKey}>
          {w.copied ? "Copied" : "Copy"}
        </button>
        <span aria-live="polite" class="sr-only">
          {w.copied ? "The recovery key is copied." : ""}
        </span>
      </p>
      <p class="strong">This key is the only way back in if you forget the password. Nimbus keeps no copy.</p>
      {recovery.warnings.length > 0 && (
        <ul class="warnings">
          {recovery.warnings.map((warning) => (
            <li key={warning}>{warning}</li>
          ))}
        </ul>
      )}
      <Check label="I saved my recovery key somewhere safe" testid="recovery-saved" checked={w.saved} onChange={w.setSaved} />
    </div>
  );
}
