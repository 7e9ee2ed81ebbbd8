// The add-a-drive wizard's state and what its steps do with it, in one hook:
// the steps share it (the vault step suggests the drive's name from the
// store, Finish sends everything), and Finish or Done clears all of it at
// once. The step components only show it and call its actions.

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

export function useAddDrive(ctx: Ctx) {
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

  // ---- Step 1 ----

  function chooseKind(kind: Kind) {
    setStore({ ...store, kind });
    setStoreErrors({});
    setVerdict(null);
  }

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

  function chooseMode(m: Mode) {
    setMode(m);
    setVaultErrors(null);
  }

  function editPassword(v: string) {
    setPassword(v);
    if (vaultErrors) setVaultErrors(null);
  }

  function editPassword2(v: string) {
    setPassword2(v);
    if (vaultErrors) setVaultErrors(null);
  }

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

  function editName(v: string) {
    setNameEdited(true);
    editDrive({ ...drive, name: v });
  }

  function editMount(v: string) {
    setMountEdited(true);
    editDrive({ ...drive, mount: v });
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

  function done() {
    const warnings = recovery?.warnings ?? [];
    const text = recovery?.text || `${drive.name} is added.`;
    // The key leaves the UI's memory here: nothing keeps a copy.
    reset();
    ctx.notify(text, false, warnings);
    ctx.go("drives");
  }

  return {
    step,
    goStep,
    stepError,
    // Step 1 and 2: the store.
    store,
    storeErrors,
    address,
    verdict,
    testing,
    tested,
    chooseKind,
    editStore,
    test,
    // Step 3: the vault.
    mode,
    password,
    password2,
    /** The strength of the password as typed now; null while it is being rated. */
    strength: score === null ? null : (strength?.s ?? null),
    vaultErrors: vaultErrors ?? {},
    chooseMode,
    editPassword,
    editPassword2,
    vaultNext,
    // Step 4: the drive.
    drive,
    driveErrors: driveErrors ?? {},
    remember,
    setRemember,
    editName,
    editMount,
    editDrive,
    finishing,
    finish,
    // Step 5: the recovery key.
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
