// Step 3 of the add-a-drive wizard: a new vault and its password, or the
// existing vault's password.

import type { Strength } from "../../bindings";
import { strengthLabel } from "../../format";
import { Field } from "../../ui";
import type { Wizard } from "./state";

export function VaultStep({ w }: { w: Wizard }) {
  const { mode } = w.vault;
  const { verdict } = w.store;
  const ve = w.vault.errors;
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void w.vaultNext();
      }}
    >
      <fieldset class="modes">
        <legend class="sr-only">New or existing vault</legend>
        <label class={mode === "create" ? "kind selected" : "kind"}>
          <input
            type="radio"
            name="mode"
            data-testid="mode-create"
            checked={mode === "create"}
            onChange={() => w.vault.chooseMode("create")}
          />
          <span class="kind-title">Create a new vault</span>
          <span class="kind-text">
            {verdict?.ok && verdict.vault
              ? "This store already holds a vault: open it instead, unless you mean another folder."
              : "The store is empty: Nimbus sets up an encrypted vault in it."}
          </span>
        </label>
        <label class={mode === "open" ? "kind selected" : "kind"}>
          <input
            type="radio"
            name="mode"
            data-testid="mode-open"
            checked={mode === "open"}
            onChange={() => w.vault.chooseMode("open")}
          />
          <span class="kind-title">Open the existing vault</span>
          <span class="kind-text">Use a vault made on another device, with its password.</span>
        </label>
      </fieldset>
      <Field
        label={mode === "create" ? "Choose a password" : "Vault password"}
        testid="vault-password"
        type="password"
        autocomplete={mode === "create" ? "new-password" : "current-password"}
        value={w.vault.password}
        onInput={w.vault.editPassword}
        error={ve["vault-password"]}
      />
      {mode === "create" && (
        <>
          <StrengthMeter password={w.vault.password} strength={w.vault.strength} />
          <Field
            label="The same password again"
            testid="vault-password2"
            type="password"
            autocomplete="new-password"
            value={w.vault.password2}
            onInput={w.vault.editPassword2}
            error={ve["vault-password2"]}
          />
        </>
      )}
      {/* Enter in a field goes on, as the Next button does. */}
      <button type="submit" class="sr-only" tabIndex={-1} aria-hidden="true">
        Next
      </button>
    </form>
  );
}

function StrengthMeter({ password, strength }: { password: string; strength: Strength | null }) {
  if (password === "") return null;
  const score = strength?.score ?? -1;
  return (
    <div class="strength" data-testid="strength-meter" data-score={strength ? String(score) : ""} aria-live="polite">
      <div class={`meter score-${score}`} aria-hidden="true">
        {[0, 1, 2, 3, 4].map((i) => (
          <span key={i} class={i <= score ? "on" : ""} />
        ))}
      </div>
      <p>
        {strength ? (
          <>
            <strong>{strengthLabel(strength.score)}</strong>
            {strength.crack_time && <span class="hint"> · would take {strength.crack_time} to guess</span>}
          </>
        ) : (
          <span class="hint">Checking…</span>
        )}
      </p>
      {strength?.warning && <p class="error">{strength.warning}</p>}
      {strength && strength.suggestions.length > 0 && (
        <ul class="hint">
          {strength.suggestions.map((s) => (
            <li key={s}>{s}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
