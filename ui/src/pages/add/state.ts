// The add-a-drive wizard's state: one small hook per form (the store, the
// vault, the drive), and `useAddDrive`, which holds the step and does what
// crosses steps (the connection test sets the vault's mode, the vault step
// proposes the drive's name, Finish sends everything, Done clears it all).
// The step components only show this state and call its actions.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Ctx } from "../../app";
import { commands, type Strength } from "../../bindings";
import {
  CACHE_DEFAULT_MIB,
  checkCreateVault,
  checkDrive,
  checkOpenVault,
  checkStore,
  emptyStoreForm,
  parseOfflinePaths,
  stepOfError,
  storeAddress,
  storeCredentials,
  suggestName,
  testAdvice,
  type Errors,
  type Kind,
  type StoreForm,
} from "../../wizard";

export type Step = 1 | 2 | 3 | 4 | 5;
export type Verdict =
  | { ok: true; vault: boolean; text: string; detail: string; key: string }
  | { ok: false; text: string; advice: string };
export type Mode = "create" | "open";
export type DriveFields = { name: string; mount: string; cacheSize: string; offline: string };
export type Recovery = { key: string; text: string; warnings: string[] };

function emptyDrive(): DriveFields {
  return { name: "", mount: "", cacheSize: String(CACHE_DEFAULT_MIB), offline: "" };
}

/** What the connection test was run on: a change of any of it asks for a new test. */
function testKey(f: StoreForm): string {
  return JSON.stringify([storeAddress(f), storeCredentials(f)]);
}

/** Steps 1 and 2: the store's form and the connection test's verdict. */
function useStoreForm() {
  const [form, setForm] = useState<StoreForm>(emptyStoreForm);
  const [errors, setErrors] = useState<Errors>({});
  const [verdict, setVerdict] = useState<Verdict | null>(null);
  const [testing, setTesting] = useState(false);

  function reset() {
    setForm(emptyStoreForm());
    setErrors({});
    setVerdict(null);
  }

  function chooseKind(kind: Kind) {
    setForm({ ...form, kind });
    setErrors({});
    setVerdict(null);
  }

  function edit(f: StoreForm) {
    setForm(f);
    if (Object.keys(errors).length > 0) setErrors(checkStore(f));
  }

  return {
    form,
    errors,
    setErrors,
    verdict,
    setVerdict,
    testing,
    setTesting,
    address: storeAddress(form),
    /** The test passed on the details as they are now. */
    tested: verdict?.ok === true && verdict.key === testKey(form),
    reset,
    chooseKind,
    edit,
  };
}

/** Step 3: new or existing vault, the password, and how strong a new one is. */
function useVaultForm(inputs: string[]) {
  const [mode, setMode] = useState<Mode>("create");
  const [password, setPassword] = useState("");
  const [password2, setPassword2] = useState("");
  const [strength, setStrength] = useState<{ pw: string; s: Strength } | null>(null);
  const [errors, setErrors] = useState<Errors | null>(null);
  const latestPassword = useRef("");
  latestPassword.current = password;

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

  /** Forgets the passwords (after Finish, and on reset). */
  function clearPasswords() {
    setPassword("");
    setPassword2("");
    setStrength(null);
  }

  function reset() {
    setMode("create");
    clearPasswords();
    setErrors(null);
  }

  function chooseMode(m: Mode) {
    setMode(m);
    setErrors(null);
  }

  function editPassword(v: string) {
    setPassword(v);
    if (errors) setErrors(null);
  }

  function editPassword2(v: string) {
    setPassword2(v);
    if (errors) setErrors(null);
  }

  /** The checks of the step; a new password is rated first when its rating is not in yet. */
  async function check(): Promise<Errors> {
    if (mode !== "create") return checkOpenVault(password);
    let s = score;
    if (s === null && password !== "") {
      const fresh = await commands.passwordStrength(password, inputs);
      setStrength({ pw: password, s: fresh });
      s = fresh.score;
    }
    return checkCreateVault(password, password2, s);
  }

  return {
    mode,
    setMode,
    password,
    password2,
    /** The strength of the password as typed now; null while it is being rated. */
    strength: score === null ? null : (strength?.s ?? null),
    errors: errors ?? {},
    setErrors,
    clearPasswords,
    reset,
    chooseMode,
    editPassword,
    editPassword2,
    check,
  };
}

/** Step 4: the drive on this device. The mount point follows the name until the person types one. */
function useDriveForm(taken: string[]) {
  const [fields, setFields] = useState<DriveFields>(emptyDrive);
  const [nameEdited, setNameEdited] = useState(false);
  const [mountEdited, setMountEdited] = useState(false);
  const [remember, setRemember] = useState(true);
  const [errors, setErrors] = useState<Errors | null>(null);

  useEffect(() => {
    if (mountEdited || fields.name === "") return;
    const name = fields.name;
    const timer = setTimeout(() => {
      void commands
        .suggestMount(name)
        .then((m) => setFields((d) => (d.name === name && !mountEdited ? { ...d, mount: m } : d)))
        .catch(() => {});
    }, 150);
    return () => clearTimeout(timer);
  }, [fields.name, mountEdited]);

  function reset() {
    setFields(emptyDrive());
    setNameEdited(false);
    setMountEdited(false);
    setRemember(true);
    setErrors(null);
  }

  function edit(d: DriveFields) {
    setFields(d);
    if (errors) setErrors(checkDrive(d, taken));
  }

  function editName(v: string) {
    setNameEdited(true);
    edit({ ...fields, name: v });
  }

  function editMount(v: string) {
    setMountEdited(true);
    edit({ ...fields, mount: v });
  }

  /** Proposes a name from the store, unless the person typed one. */
  function suggestFrom(store: StoreForm) {
    if (nameEdited) return;
    const name = fields.name || suggestName(store, taken);
    setFields((d) => ({ ...d, name }));
  }

  return {
    fields,
    errors: errors ?? {},
    setErrors,
    remember,
    setRemember,
    reset,
    edit,
    editName,
    editMount,
    suggestFrom,
  };
}

/** The wizard: its step, each step's form, and what goes from one step to the next. */
export function useAddDrive(ctx: Ctx) {
  const [step, setStep] = useState<Step>(1);
  const [stepError, setStepError] = useState<{ step: Step; text: string } | null>(null);
  const [finishing, setFinishing] = useState(false);
  const [recovery, setRecovery] = useState<Recovery | null>(null);
  const [saved, setSaved] = useState(false);
  const [copied, setCopied] = useState(false);

  const taken = (ctx.status?.service?.drives.map((d) => d.name) ?? []).concat(ctx.infos.map((i) => i.name));
  const store = useStoreForm();
  const drive = useDriveForm(taken);
  const f = store.form;
  const vault = useVaultForm([drive.fields.name, f.s3.bucket, f.webdav.user, f.sftp.user].filter((s) => s !== ""));

  function reset() {
    setStep(1);
    store.reset();
    vault.reset();
    drive.reset();
    setStepError(null);
    setRecovery(null);
    setSaved(false);
    setCopied(false);
  }

  function goStep(s: Step) {
    setStep(s);
    setStepError(null);
  }

  /** Step 2's connection test; a vault found there makes step 3 open it. */
  async function test() {
    const errors = checkStore(f);
    store.setErrors(errors);
    setStepError(null);
    const addr = storeAddress(f);
    if (Object.keys(errors).length > 0 || addr === null) {
      store.setVerdict(null);
      return;
    }
    store.setTesting(true);
    const key = testKey(f);
    try {
      const r = await commands.testStore(addr, storeCredentials(f));
      if (r.status === "ok") {
        store.setVerdict({
          ok: true,
          vault: r.data.vault,
          key,
          text: r.data.vault
            ? "Connected. This store holds a Nimbus vault."
            : "Connected. No vault here yet: one will be created.",
          detail: r.data.message,
        });
        vault.setMode(r.data.vault ? "open" : "create");
      } else {
        store.setVerdict({ ok: false, text: r.error.message, advice: testAdvice(r.error.code) });
      }
    } catch (e) {
      store.setVerdict({ ok: false, text: String(e), advice: testAdvice("internal") });
    } finally {
      store.setTesting(false);
    }
  }

  /** Step 3's Next: the password's checks, then step 4 with a name proposed. */
  async function vaultNext() {
    let errors: Errors;
    try {
      errors = await vault.check();
    } catch (e) {
      setStepError({ step: 3, text: `Cannot check the password's strength (${String(e)}). Try again.` });
      return;
    }
    vault.setErrors(errors);
    if (Object.keys(errors).length > 0) return;
    drive.suggestFrom(f);
    goStep(4);
  }

  /** Step 4's Finish: adds the drive; a new vault's recovery key is step 5. */
  async function finish() {
    const d = drive.fields;
    const errors = checkDrive(d, taken);
    drive.setErrors(errors);
    setStepError(null);
    if (Object.keys(errors).length > 0 || store.address === null) return;
    setFinishing(true);
    try {
      const r = await commands.addDrive({
        name: d.name.trim(),
        store: store.address,
        mount: d.mount.trim(),
        password: vault.password,
        credentials: storeCredentials(f),
        remember: drive.remember,
        create: vault.mode === "create",
        cache_size_mib: Number(d.cacheSize.trim()),
        offline: parseOfflinePaths(d.offline).paths,
      });
      if (r.status === "ok") {
        vault.clearPasswords();
        await ctx.refresh();
        if (r.data.recovery_key) {
          setRecovery({ key: r.data.recovery_key, text: r.data.message, warnings: r.data.warnings });
          goStep(5);
        } else {
          ctx.notify(r.data.message || `${d.name} is added.`, false, r.data.warnings);
          reset();
          ctx.go("drives");
        }
      } else {
        const s = stepOfError(r.error.code);
        if (r.error.code === "drive_exists") drive.setErrors({ "drive-name": r.error.message });
        if (s === 3) vault.setErrors({ "vault-password": r.error.message });
        setStep(s);
        setStepError({ step: s, text: r.error.message });
      }
    } finally {
      setFinishing(false);
    }
  }

  /** Step 5's Done. */
  function done() {
    const warnings = recovery?.warnings ?? [];
    const text = recovery?.text || `${drive.fields.name} is added.`;
    // The key leaves the UI's memory here: nothing keeps a copy.
    reset();
    ctx.notify(text, false, warnings);
    ctx.go("drives");
  }

  return {
    step,
    goStep,
    stepError,
    store,
    vault,
    drive,
    test,
    vaultNext,
    finishing,
    finish,
    recovery,
    saved,
    setSaved,
    copied,
    setCopied,
    done,
  };
}

/** The wizard as its steps see it. */
export type Wizard = ReturnType<typeof useAddDrive>;
