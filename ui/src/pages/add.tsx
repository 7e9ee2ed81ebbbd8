// The add-a-drive wizard: 1 kind of store, 2 its details and a connection
// test, 3 the vault (new or existing), 4 the drive on this device, and
// 5 the recovery key of a new vault, shown once.
//
// The checks and the store address live in wizard.ts; this file only keeps
// the form's state and talks to the shell.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Ctx } from "../app";
import { commands, type Strength } from "../bindings";
import { strengthLabel } from "../format";
import {
  CACHE_DEFAULT_MIB,
  S3_PRESETS,
  changeRegion,
  checkCreateVault,
  checkDrive,
  checkOpenVault,
  checkStore,
  choosePreset,
  emptyStoreForm,
  parseOfflinePaths,
  preset,
  stepOfError,
  storeAddress,
  storeCredentials,
  suggestName,
  testAdvice,
  type Errors,
  type Kind,
  type S3PresetId,
  type StoreForm,
} from "../wizard";
import { Check, Field, valueOf } from "../ui";

type Step = 1 | 2 | 3 | 4 | 5;
type Verdict =
  | { ok: true; vault: boolean; text: string; detail: string; key: string }
  | { ok: false; text: string; advice: string };
type Mode = "create" | "open";
type DriveFields = { name: string; mount: string; cacheSize: string; offline: string };
type Recovery = { key: string; text: string; warnings: string[] };

const STEPS = ["Store", "Details", "Vault", "Drive", "Recovery key"];

const KINDS: { kind: Kind; title: string; text: string }[] = [
  { kind: "s3", title: "S3-compatible storage", text: "Amazon S3, Backblaze B2, Cloudflare R2, Wasabi, MinIO, Garage…" },
  { kind: "webdav", title: "WebDAV", text: "Nextcloud, ownCloud, a NAS or any WebDAV server." },
  { kind: "sftp", title: "SFTP (SSH)", text: "A folder on a machine you reach with SSH." },
  { kind: "local", title: "A folder", text: "A folder on this computer, a USB disk or a network share." },
];

function emptyDrive(): DriveFields {
  return { name: "", mount: "", cacheSize: String(CACHE_DEFAULT_MIB), offline: "" };
}

/** What the connection test was run on: a change of any of it asks for a new test. */
function testKey(f: StoreForm): string {
  return JSON.stringify([storeAddress(f), storeCredentials(f)]);
}

export function AddDrive(ctx: Ctx) {
  const [step, setStep] = useState<Step>(1);
  const [store, setStore] = useState<StoreForm>(emptyStoreForm);
  const [storeErrors, setStoreErrors] = useState<Errors>({});
  const [verdict, setVerdict] = useState<Verdict | null>(null);
  const [testing, setTesting] = useState(false);
  const [mode, setMode] = useState<Mode>("create");
  const [password, setPassword] = useState("");
  const [password2, setPassword2] = useState("");
  const [strength, setStrength] = useState<{ pw: string; s: Strength } | null>(null);
  const [vaultErrors, setVaultErrors] = useState<Errors | null>(null);
  const [drive, setDrive] = useState<DriveFields>(emptyDrive);
  const [nameEdited, setNameEdited] = useState(false);
  const [mountEdited, setMountEdited] = useState(false);
  const [remember, setRemember] = useState(true);
  const [driveErrors, setDriveErrors] = useState<Errors | null>(null);
  const [stepError, setStepError] = useState<{ step: Step; text: string } | null>(null);
  const [finishing, setFinishing] = useState(false);
  const [recovery, setRecovery] = useState<Recovery | null>(null);
  const [saved, setSaved] = useState(false);
  const [copied, setCopied] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const latestPassword = useRef("");
  latestPassword.current = password;

  const taken = (ctx.status?.service?.drives.map((d) => d.name) ?? []).concat(ctx.infos.map((i) => i.name));
  const address = storeAddress(store);
  const tested = verdict?.ok === true && verdict.key === testKey(store);

  function reset() {
    setStep(1);
    setStore(emptyStoreForm());
    setStoreErrors({});
    setVerdict(null);
    setMode("create");
    setPassword("");
    setPassword2("");
    setStrength(null);
    setVaultErrors(null);
    setDrive(emptyDrive());
    setNameEdited(false);
    setMountEdited(false);
    setRemember(true);
    setDriveErrors(null);
    setStepError(null);
    setRecovery(null);
    setSaved(false);
    setCopied(false);
  }

  function goStep(s: Step) {
    setStep(s);
    setStepError(null);
  }

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

  // ---- Step 2 ----

  function editStore(f: StoreForm) {
    setStore(f);
    if (Object.keys(storeErrors).length > 0) setStoreErrors(checkStore(f));
  }

  async function test() {
    const errors = checkStore(store);
    setStoreErrors(errors);
    setStepError(null);
    const addr = storeAddress(store);
    if (Object.keys(errors).length > 0 || addr === null) {
      setVerdict(null);
      return;
    }
    setTesting(true);
    const key = testKey(store);
    try {
      const r = await commands.testStore(addr, storeCredentials(store));
      if (r.status === "ok") {
        setVerdict({
          ok: true,
          vault: r.data.vault,
          key,
          text: r.data.vault
            ? "Connected. This store holds a Nimbus vault."
            : "Connected. No vault here yet: one will be created.",
          detail: r.data.message,
        });
        setMode(r.data.vault ? "open" : "create");
      } else {
        setVerdict({ ok: false, text: r.error.message, advice: testAdvice(r.error.code) });
      }
    } catch (e) {
      setVerdict({ ok: false, text: String(e), advice: testAdvice("internal") });
    } finally {
      setTesting(false);
    }
  }

  // ---- Step 3 ----

  const inputs = [drive.name, store.s3.bucket, store.webdav.user, store.sftp.user].filter((s) => s !== "");

  useEffect(() => {
    if (mode !== "create" || password === "") {
      setStrength(null);
      return;
    }
    const pw = password;
    const timer = setTimeout(() => {
      void commands
        .passwordStrength(pw, inputs)
        .then((s) => {
          if (latestPassword.current === pw) setStrength({ pw, s });
        })
        .catch(() => {});
    }, 150);
    return () => clearTimeout(timer);
    // `inputs` only sharpens the estimate; the password and mode decide when to ask.
  }, [password, mode]);

  const score = strength && strength.pw === password ? strength.s.score : null;

  async function vaultNext() {
    let errors: Errors;
    if (mode === "create") {
      let s = score;
      if (s === null && password !== "") {
        try {
          const fresh = await commands.passwordStrength(password, inputs);
          setStrength({ pw: password, s: fresh });
          s = fresh.score;
        } catch (e) {
          setStepError({ step: 3, text: `Cannot check the password's strength (${String(e)}). Try again.` });
          return;
        }
      }
      errors = checkCreateVault(password, password2, s);
    } else {
      errors = checkOpenVault(password);
    }
    setVaultErrors(errors);
    if (Object.keys(errors).length > 0) return;
    if (!nameEdited) {
      const name = drive.name || suggestName(store, taken);
      setDrive((d) => ({ ...d, name }));
    }
    goStep(4);
  }

  // ---- Step 4 ----

  // The mount point follows the name until the person types one.
  useEffect(() => {
    if (mountEdited || drive.name === "") return;
    const name = drive.name;
    const timer = setTimeout(() => {
      void commands
        .suggestMount(name)
        .then((m) => setDrive((d) => (d.name === name && !mountEdited ? { ...d, mount: m } : d)))
        .catch(() => {});
    }, 150);
    return () => clearTimeout(timer);
  }, [drive.name, mountEdited]);

  function editDrive(d: DriveFields) {
    setDrive(d);
    if (driveErrors) setDriveErrors(checkDrive(d, taken));
  }

  async function finish() {
    const errors = checkDrive(drive, taken);
    setDriveErrors(errors);
    setStepError(null);
    if (Object.keys(errors).length > 0 || address === null) return;
    setFinishing(true);
    try {
      const r = await commands.addDrive({
        name: drive.name.trim(),
        store: address,
        mount: drive.mount.trim(),
        password,
        credentials: storeCredentials(store),
        remember,
        create: mode === "create",
        cache_size_mib: Number(drive.cacheSize.trim()),
        offline: parseOfflinePaths(drive.offline).paths,
      });
      if (r.status === "ok") {
        setPassword("");
        setPassword2("");
        setStrength(null);
        await ctx.refresh();
        if (r.data.recovery_key) {
          setRecovery({ key: r.data.recovery_key, text: r.data.message, warnings: r.data.warnings });
          goStep(5);
        } else {
          ctx.notify(r.data.message || `${drive.name} is added.`, false, r.data.warnings);
          reset();
          ctx.go("drives");
        }
      } else {
        const s = stepOfError(r.error.code);
        if (r.error.code === "drive_exists") setDriveErrors({ "drive-name": r.error.message });
        if (s === 3) setVaultErrors({ "vault-password": r.error.message });
        setStep(s);
        setStepError({ step: s, text: r.error.message });
      }
    } finally {
      setFinishing(false);
    }
  }

  // ---- Step 5 ----

  async function copyKey() {
    if (!recovery) return;
    try {
      await navigator.clipboard.writeText(recovery.key);
      setCopied(true);
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

  function done() {
    const warnings = recovery?.warnings ?? [];
    const text = recovery?.text || `${drive.name} is added.`;
    // The key leaves the UI's memory here: nothing keeps a copy.
    reset();
    ctx.notify(text, false, warnings);
    ctx.go("drives");
  }

  // ---- Rendering ----

  const s3 = store.s3;
  const p = preset(s3.preset);
  const se = storeErrors;
  const ve = vaultErrors ?? {};
  const de = driveErrors ?? {};

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
        {
          [
            "Where should the drive keep its files?",
            "Connect to the store",
            "The vault",
            "The drive on this device",
            "Save your recovery key",
          ][step - 1]
        }
      </h2>

      {step === 1 && (
        <fieldset class="kinds">
          <legend class="sr-only">Kind of store</legend>
          {KINDS.map((k) => (
            <label key={k.kind} class={store.kind === k.kind ? "kind selected" : "kind"}>
              <input
                type="radio"
                name="kind"
                value={k.kind}
                data-testid={`kind-${k.kind}`}
                checked={store.kind === k.kind}
                onChange={() => {
                  setStore({ ...store, kind: k.kind });
                  setStoreErrors({});
                  setVerdict(null);
                }}
              />
              <span class="kind-title">{k.title}</span>
              <span class="kind-text">{k.text}</span>
            </label>
          ))}
        </fieldset>
      )}

      {step === 2 && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void test();
          }}
        >
          {store.kind === "s3" && (
            <>
              <div class="field">
                <label for="s3-preset">Service</label>
                <select
                  id="s3-preset"
                  data-testid="s3-preset"
                  value={s3.preset}
                  onChange={(e) => editStore({ ...store, s3: choosePreset(s3, valueOf(e) as S3PresetId) })}
                >
                  {S3_PRESETS.map((x) => (
                    <option key={x.id} value={x.id}>
                      {x.label}
                    </option>
                  ))}
                </select>
              </div>
              <Field
                label="Endpoint"
                testid="s3-endpoint"
                mono
                inputMode="url"
                value={s3.endpoint}
                placeholder={s3.preset === "aws" ? "(Amazon S3)" : "http://127.0.0.1:3900"}
                hint={
                  s3.preset === "aws"
                    ? "Leave empty for Amazon S3."
                    : s3.preset === "r2"
                      ? "Replace <account-id> with your Cloudflare account ID."
                      : "The service's address: http(s)://host[:port]."
                }
                onInput={(v) => editStore({ ...store, s3: { ...s3, endpoint: v } })}
                error={se["s3-endpoint"]}
              />
              <Field
                label="Region"
                testid="s3-region"
                mono
                value={s3.region}
                placeholder={p.regionHint}
                hint="Optional for most services."
                onInput={(v) => editStore({ ...store, s3: changeRegion(s3, v) })}
                error={se["s3-region"]}
              />
              <Field
                label="Bucket"
                testid="s3-bucket"
                mono
                value={s3.bucket}
                onInput={(v) => editStore({ ...store, s3: { ...s3, bucket: v } })}
                error={se["s3-bucket"]}
              />
              <Field
                label="Folder in the bucket (optional)"
                testid="s3-prefix"
                mono
                value={s3.prefix}
                placeholder="nimbus/laptop"
                onInput={(v) => editStore({ ...store, s3: { ...s3, prefix: v } })}
                error={se["s3-prefix"]}
              />
              <Field
                label="Access key ID"
                testid="s3-access-key"
                mono
                value={s3.accessKey}
                onInput={(v) => editStore({ ...store, s3: { ...s3, accessKey: v } })}
                error={se["s3-access-key"]}
              />
              <Field
                label="Secret access key"
                testid="s3-secret-key"
                type="password"
                value={s3.secretKey}
                hint="The keys are saved to this device's keyring, never in the store address."
                onInput={(v) => editStore({ ...store, s3: { ...s3, secretKey: v } })}
                error={se["s3-secret-key"]}
              />
            </>
          )}
          {store.kind === "webdav" && (
            <>
              <Field
                label="Folder address"
                testid="webdav-url"
                mono
                inputMode="url"
                value={store.webdav.url}
                placeholder="https://cloud.example.com/remote.php/dav/files/ann/Nimbus"
                onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, url: v } })}
                error={se["webdav-url"]}
              />
              <Field
                label="User name"
                testid="webdav-user"
                autocomplete="username"
                value={store.webdav.user}
                onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, user: v } })}
                error={se["webdav-user"]}
              />
              <Field
                label="Password"
                testid="webdav-password"
                type="password"
                value={store.webdav.password}
                hint="Saved to this device's keyring, never in the store address. Nextcloud: use an app password."
                onInput={(v) => editStore({ ...store, webdav: { ...store.webdav, password: v } })}
                error={se["webdav-password"]}
              />
            </>
          )}
          {store.kind === "sftp" && (
            <>
              <div class="row">
                <Field
                  label="Server"
                  testid="sftp-host"
                  mono
                  value={store.sftp.host}
                  placeholder="nas.local"
                  onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, host: v } })}
                  error={se["sftp-host"]}
                />
                <Field
                  label="Port"
                  testid="sftp-port"
                  inputMode="numeric"
                  value={store.sftp.port}
                  onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, port: v } })}
                  error={se["sftp-port"]}
                />
              </div>
              <Field
                label="User name"
                testid="sftp-user"
                autocomplete="username"
                value={store.sftp.user}
                hint="Empty: the user of ~/.ssh/config, or yours on this device."
                onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, user: v } })}
                error={se["sftp-user"]}
              />
              <Field
                label="Folder on the server"
                testid="sftp-path"
                mono
                value={store.sftp.path}
                placeholder="/srv/nimbus or ~/nimbus"
                onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, path: v } })}
                error={se["sftp-path"]}
              />
              <Field
                label="Password (optional)"
                testid="sftp-password"
                type="password"
                value={store.sftp.password}
                hint="Leave empty to use your SSH keys or agent. A password is saved to this device's keyring."
                onInput={(v) => editStore({ ...store, sftp: { ...store.sftp, password: v } })}
                error={se["sftp-password"]}
              />
            </>
          )}
          {store.kind === "local" && (
            <Field
              label="Folder"
              testid="local-path"
              mono
              value={store.local.path}
              placeholder="/srv/vault or ~/Vault"
              hint="Any folder: on this disk, a USB disk or a mounted network share."
              onInput={(v) => editStore({ ...store, local: { path: v } })}
              error={se["local-path"]}
            />
          )}
          {address && (
            <p class="hint">
              Store address: <code>{address}</code>
            </p>
          )}
          <div class="test-row">
            <button type="submit" data-testid="wizard-test" disabled={testing}>
              {testing ? "Testing…" : "Test connection"}
            </button>
          </div>
          <div aria-live="polite">
            {verdict && (
              <div
                class={verdict.ok ? "verdict ok" : "verdict bad"}
                data-testid="wizard-verdict"
                data-ok={verdict.ok ? "true" : "false"}
              >
                <p>
                  <span aria-hidden="true">{verdict.ok ? "✓ " : "✕ "}</span>
                  {verdict.text}
                </p>
                {verdict.ok
                  ? verdict.detail && verdict.detail !== verdict.text && <p class="hint">{verdict.detail}</p>
                  : <p>What to do: {verdict.advice}</p>}
                {verdict.ok && !tested && <p class="hint">The details changed since the test: test again.</p>}
              </div>
            )}
          </div>
        </form>
      )}

      {step === 3 && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void vaultNext();
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
                onChange={() => {
                  setMode("create");
                  setVaultErrors(null);
                }}
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
                onChange={() => {
                  setMode("open");
                  setVaultErrors(null);
                }}
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
            value={password}
            onInput={(v) => {
              setPassword(v);
              if (vaultErrors) setVaultErrors(null);
            }}
            error={ve["vault-password"]}
          />
          {mode === "create" && (
            <>
              <StrengthMeter password={password} strength={score === null ? null : strength?.s ?? null} />
              <Field
                label="The same password again"
                testid="vault-password2"
                type="password"
                autocomplete="new-password"
                value={password2}
                onInput={(v) => {
                  setPassword2(v);
                  if (vaultErrors) setVaultErrors(null);
                }}
                error={ve["vault-password2"]}
              />
            </>
          )}
          {/* Enter in a field goes on, as the Next button does. */}
          <button type="submit" class="sr-only" tabIndex={-1} aria-hidden="true">
            Next
          </button>
        </form>
      )}

      {step === 4 && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void finish();
          }}
        >
          <Field
            label="Drive name"
            testid="drive-name"
            value={drive.name}
            hint="Letters, digits, -, _ and ."
            onInput={(v) => {
              setNameEdited(true);
              editDrive({ ...drive, name: v });
            }}
            error={de["drive-name"]}
          />
          <Field
            label="Folder on this device"
            testid="mount-point"
            mono
            value={drive.mount}
            hint="Where the drive's files appear. Nimbus creates the folder if needed."
            onInput={(v) => {
              setMountEdited(true);
              editDrive({ ...drive, mount: v });
            }}
            error={de["mount-point"]}
          />
          <Field
            label="Space on this device (MiB)"
            testid="cache-size"
            inputMode="numeric"
            value={drive.cacheSize}
            hint="Files you used lately are kept here, so they open without the network. 1024 MiB = 1 GiB."
            onInput={(v) => editDrive({ ...drive, cacheSize: v })}
            error={de["cache-size"]}
          />
          <Field
            label="Keep offline (optional)"
            testid="offline-paths"
            multiline
            mono
            value={drive.offline}
            placeholder={"Documents\nPhotos/2024"}
            hint="Folders of the drive always kept on this device, one per line."
            onInput={(v) => editDrive({ ...drive, offline: v })}
            error={de["offline-paths"]}
          />
          <Check
            label="Remember the password on this device"
            testid="remember-password"
            checked={remember}
            onChange={setRemember}
            hint="Saved in this device's keyring, so the drive mounts without asking."
          />
          <button type="submit" class="sr-only" tabIndex={-1} aria-hidden="true">
            Finish
          </button>
        </form>
      )}

      {step === 5 && recovery && (
        <div class="recovery">
          <p>{recovery.text}</p>
          <pre class="mono key" data-testid="recovery-key" tabIndex={0} aria-label="Recovery key">
            {recovery.key}
          </pre>
          <p>
            <button type="button" data-testid="recovery-copy" onClick={copyKey}>
              {copied ? "Copied" : "Copy"}
            </button>
            <span aria-live="polite" class="sr-only">
              {copied ? "The recovery key is copied." : ""}
            </span>
          </p>
          <p class="strong">
            This key is the only way back in if you forget the password. Nimbus keeps no copy.
          </p>
          {recovery.warnings.length > 0 && (
            <ul class="warnings">
              {recovery.warnings.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          )}
          <Check
            label="I saved my recovery key somewhere safe"
            testid="recovery-saved"
            checked={saved}
            onChange={setSaved}
          />
        </div>
      )}

      {stepError && stepError.step === step && (
        <div class="error-box" data-testid="wizard-error" role="alert">
          {stepError.text}
        </div>
      )}

      <div class="wizard-buttons">
        {step >= 2 && step <= 4 && (
          <button type="button" data-testid="wizard-back" onClick={() => goStep((step - 1) as Step)}>
            Back
          </button>
        )}
        {step === 1 && (
          <button type="button" class="primary" data-testid="wizard-next" onClick={() => goStep(2)}>
            Next
          </button>
        )}
        {step === 2 && (
          <button
            type="button"
            class="primary"
            data-testid="wizard-next"
            disabled={!tested}
            title={tested ? undefined : "Test the connection first"}
            onClick={() => goStep(3)}
          >
            Next
          </button>
        )}
        {step === 3 && (
          <button type="button" class="primary" data-testid="wizard-next" onClick={() => void vaultNext()}>
            Next
          </button>
        )}
        {step === 4 && (
          <button
            type="button"
            class="primary"
            data-testid="wizard-finish"
            disabled={finishing}
            onClick={() => void finish()}
          >
            {finishing ? (mode === "create" ? "Creating the vault…" : "Adding…") : "Finish"}
          </button>
        )}
        {step === 5 && (
          <button type="button" class="primary" data-testid="recovery-done" disabled={!saved} onClick={done}>
            Done
          </button>
        )}
      </div>
    </section>
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
