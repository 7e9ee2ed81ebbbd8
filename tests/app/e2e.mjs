// The Nimbus desktop app through its window, driven by WebDriver
// (tauri-driver in front of WebKitWebDriver). Run by tests/app/run.sh, which
// sets up the desktop, Garage and the environment read below; each step
// leaves a screenshot in $NIMBUS_APP_OUT/screens/NN-name.png, and a failed
// one also NN-name-FAILED.png and the page's HTML.
//
// Steps: (a) the window, no drives, the service started by the app; (b) the
// wizard adds an S3 drive on Garage; (c) a 5 MB file goes Syncing -> Up to
// date, then the tray menu (tray.py); (d) pause, resume; (e) lock with its
// notification, unlock from the keyring; (f) a deleted file restored in
// place from a snapshot; (g0) another device (a second mount of the vault,
// with its own state): its new file in Activity as "Updated from …", its
// devices on the Drives page, and a file both changed listed in Activity as
// a conflict with Open and Show in folder; (g) Activity and Settings; (h)
// the keyboard alone
// (focus, a visible focus ring, pages and switches), and start at login
// (the autostart entry written and removed).

import { Builder, By, Key } from "selenium-webdriver";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`e2e.mjs: ${name} is not set (run it through tests/app/run.sh)`);
    process.exit(2);
  }
  return v;
}

const APP = need("NIMBUS_APP_BIN");
const NIMBUS = need("NIMBUS_BIN");
const NIMBUSD = need("NIMBUSD_EXPECTED");
const WEBDRIVER_URL = need("WEBDRIVER_URL");
const OUT = need("NIMBUS_APP_OUT");
const MOUNT = need("NIMBUS_APP_MOUNT");
const NOTIFY_LOG = need("NIMBUS_APP_NOTIFY_LOG");
const TRAY = need("NIMBUS_APP_TRAY");
const RUNTIME = need("XDG_RUNTIME_DIR");
const AUTOSTART_DIR = path.join(need("XDG_CONFIG_HOME"), "autostart");
const garage = {
  endpoint: need("GARAGE_SINGLE_S3_ENDPOINT"),
  region: need("GARAGE_REGION"),
  bucket: need("GARAGE_BUCKET"),
  accessKey: need("GARAGE_ACCESS_KEY"),
  secretKey: need("GARAGE_SECRET_KEY"),
};
const DRIVE = "Cloud";
const PASSWORD = "orbit-violet-canyon-7425-tundra";
const FILE = "e2e-random-5mb.bin";
const SCREENS = path.join(OUT, "screens");
fs.mkdirSync(SCREENS, { recursive: true });

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (file) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};

// --- the service, through the CLI ---------------------------------------------------

// Plain errors (not Failure): a wait retries them.
function status() {
  const r = spawnSync(NIMBUS, ["status", "--json"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`nimbus status --json failed (${r.status}): ${(r.stderr || "").trim()}`);
  return JSON.parse(r.stdout);
}

function driveStatus(name = DRIVE) {
  const d = status().drives.find((x) => x.name === name);
  if (!d) throw new Error(`nimbus status does not list a drive named ${name}`);
  return d;
}

// --- waiting --------------------------------------------------------------------------

// waitFor(what, ms, fn): polls fn every 100 ms until it returns something
// truthy; fails with `what` (a string, or a function called then) and the
// last value or error seen. A Failure thrown by fn ends the wait at once;
// other errors (the service not answering yet) are retried.
async function waitFor(what, ms, fn) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      if (e instanceof Failure) throw e;
      last = `error: ${e.message.split("\n")[0]}`;
    }
    if (Date.now() > end) {
      const w = typeof what === "function" ? what() : what;
      fail(`${w}: not within ${ms / 1000} s (last seen: ${JSON.stringify(last)})`);
    }
    await sleep(100);
  }
}

// --- the page ---------------------------------------------------------------------------

let driver;
const tid = (id) => By.css(`[data-testid="${id}"]`);
const card = () => By.css(`[data-testid="drive-card"][data-drive="${DRIVE}"]`);

async function find(id, ms = 10_000) {
  return waitFor(`no element [data-testid="${id}"] on the page`, ms, async () => {
    const els = await driver.findElements(tid(id));
    return els.length ? els[0] : null;
  });
}

async function visible(id) {
  const els = await driver.findElements(tid(id));
  for (const e of els) if (await e.isDisplayed()) return e;
  return null;
}

async function click(id, ms = 10_000) {
  const el = await waitFor(`no enabled [data-testid="${id}"] to click`, ms, async () => {
    const e = await visible(id);
    return e && (await e.isEnabled()) ? e : null;
  });
  await el.click();
  return el;
}

// fill(id, value): replaces an input's text, the way typing would (so the
// page's input handlers run), and checks it took. The page may fill in a
// default (the mount point) while this types: then it types again.
async function fill(id, value) {
  let got;
  for (let attempt = 0; attempt < 3; attempt++) {
    const el = await find(id);
    await el.clear();
    if ((await el.getAttribute("value")) !== "") await el.sendKeys(Key.CONTROL, "a", Key.NULL, Key.BACK_SPACE);
    if (value !== "") await el.sendKeys(value);
    await sleep(200);
    got = await el.getAttribute("value");
    if (got === value) return;
  }
  fail(`typed into [data-testid="${id}"] three times but it holds ${JSON.stringify(got)}`);
}

async function text(id, within) {
  const els = await (within ?? driver).findElements(tid(id));
  return els.length ? (await els[0].getText()).trim() : null;
}

async function driveCard() {
  const els = await driver.findElements(card());
  return els.length ? els[0] : null;
}

async function driveState() {
  const c = await driveCard();
  return c ? text("drive-state", c) : null;
}

async function clickInCard(id) {
  const el = await waitFor(`no enabled [data-testid="${id}"] in the ${DRIVE} card`, 10_000, async () => {
    const c = await driveCard();
    const e = c && (await c.findElements(tid(id)))[0];
    return e && (await e.isDisplayed()) && (await e.isEnabled()) ? e : null;
  });
  await el.click();
}

async function waitUiState(want, ms) {
  let last = null;
  await waitFor(() => `the ${DRIVE} card says "${last ?? "(no card)"}", not "${want}"`, ms, async () => {
    last = await driveState();
    return last === want;
  });
}

async function goto(page) {
  await click(`nav-${page}`);
}

let n = 0;
async function shot(name) {
  n += 1;
  const file = path.join(SCREENS, `${String(n).padStart(2, "0")}-${name}.png`);
  fs.writeFileSync(file, await driver.takeScreenshot(), "base64");
  return file;
}

async function step(name, fn) {
  console.log(`\n--- [${secs()} s] ${name}`);
  try {
    await fn();
  } catch (e) {
    console.error(`FAILED at "${name}": ${e instanceof Failure ? e.message : e.stack || e}`);
    try {
      n += 1;
      const slug = name.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase();
      const base = path.join(SCREENS, `${String(n).padStart(2, "0")}-${slug}-FAILED`);
      fs.writeFileSync(`${base}.png`, await driver.takeScreenshot(), "base64");
      fs.writeFileSync(`${base}.html`, await driver.getPageSource());
      console.error(`screenshot and page: ${base}.png, .html`);
    } catch (e2) {
      console.error(`(no screenshot: ${e2.message.split("\n")[0]})`);
    }
    throw e;
  }
}

// --- processes ----------------------------------------------------------------------------

function proc(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const exe = fs.readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
    return { pid, ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), exe };
  } catch {
    return null;
  }
}

function oursRunning(exe) {
  const found = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const p = proc(Number(d));
    if (!p || p.exe !== exe) continue;
    try {
      const env = fs.readFileSync(`/proc/${d}/environ`, "utf8").split("\0");
      if (env.includes(`XDG_RUNTIME_DIR=${RUNTIME}`)) found.push(p);
    } catch {
      /* gone */
    }
  }
  return found;
}

// The nimbusd the app started: it runs the expected binary and comes from
// the app (an ancestor is the app, or it shares the app's process group or
// session: a service started with setsid still has the app as its parent
// until the app exits).
function checkServiceFromApp() {
  const apps = oursRunning(APP);
  if (!apps.length) fail(`no process runs ${APP} in this test's runtime folder`);
  const svcs = oursRunning(NIMBUSD);
  if (!svcs.length) fail(`the app did not start the service: no process runs ${NIMBUSD}`);
  if (svcs.length > 1) fail(`${svcs.length} nimbusd processes run: ${svcs.map((s) => s.pid).join(", ")}`);
  const svc = svcs[0];
  const chain = [];
  for (let p = proc(svc.ppid); p && p.pid > 1; p = proc(p.ppid)) chain.push(p);
  const fromApp =
    chain.some((p) => p.exe === APP) || apps.some((a) => a.pgid === svc.pgid || a.sid === svc.sid);
  const desc = chain.map((p) => `${p.pid} ${path.basename(p.exe)}`).join(" <- ");
  if (!fromApp) {
    fail(
      `nimbusd (pid ${svc.pid}, group ${svc.pgid}, session ${svc.sid}) does not come from the app ` +
        `(app: ${apps.map((a) => `pid ${a.pid} group ${a.pgid} session ${a.sid}`).join("; ")}; parents: ${desc || "init"})`,
    );
  }
  const sock = path.join(RUNTIME, "nimbus", "nimbusd.sock");
  if (!fs.existsSync(sock)) fail(`the service does not listen at ${sock}`);
  console.log(`nimbusd pid ${svc.pid} came from the app (parents: ${desc || "init"}); socket ${sock}`);
  fs.writeFileSync(path.join(OUT, "logs", "service-process.txt"), `nimbusd ${svc.pid} parents: ${desc}\n`);
}

// --- the test ------------------------------------------------------------------------------

async function main() {
  driver = await new Builder()
    .usingServer(WEBDRIVER_URL)
    .withCapabilities({ browserName: "wry", "tauri:options": { application: APP, args: [] } })
    .build();
  await driver.manage().setTimeouts({ implicit: 0, script: 30_000, pageLoad: 60_000 });

  await step("a: the window, no drives yet", async () => {
    const title = await waitFor("the window has no title", 30_000, () => driver.getTitle());
    if (title !== "Nimbus") fail(`the window's title is ${JSON.stringify(title)}, not "Nimbus"`);
    const line = await waitFor("the status line does not say there are no drives", 30_000, async () => {
      const t = await text("status-line");
      return t && /no drives/i.test(t) ? t : null;
    });
    console.log(`status line: ${line}`);
    if ((await driver.findElements(tid("drive-card"))).length) fail("a drive card is shown on a fresh start");
    await waitFor("nimbus status does not answer (the app should have started the service)", 20_000, () =>
      status().drives.length === 0 ? "ok" : fail(`a fresh service has drives: ${JSON.stringify(status().drives)}`),
    );
    checkServiceFromApp();
    await goto("drives");
    await shot("drives-empty");
  });

  await step("b: the wizard adds an S3 drive on Garage", async () => {
    await goto("add");
    await click("kind-s3");
    await click("wizard-next");
    const preset = await find("s3-preset");
    const options = await preset.findElements(By.css("option"));
    let other = null;
    for (const o of options) if (/garage/i.test(await o.getText())) other = o;
    if (!other) fail(`no "MinIO / Garage / other" option in s3-preset`);
    await other.click();
    await fill("s3-endpoint", garage.endpoint);
    await fill("s3-region", garage.region);
    await fill("s3-bucket", garage.bucket);
    await fill("s3-prefix", "app-e2e");
    await fill("s3-access-key", garage.accessKey);
    await fill("s3-secret-key", garage.secretKey);
    await click("wizard-test");
    const verdict = await waitFor("Test connection gave no verdict", 60_000, async () => {
      const v = await visible("wizard-verdict");
      return v && (await v.getAttribute("data-ok")) !== null && (await v.getText()).trim() ? v : null;
    });
    const ok = await verdict.getAttribute("data-ok");
    const vtext = (await verdict.getText()).trim();
    await shot("wizard-test-ok");
    if (ok !== "true") fail(`Test connection failed against Garage: ${vtext}`);
    console.log(`verdict: ${vtext.split("\n")[0]}`);
    await click("wizard-next");
    await click("mode-create");
    await fill("vault-password", PASSWORD);
    await fill("vault-password2", PASSWORD);
    const score = await waitFor("the strength meter gave no score", 15_000, async () => {
      const m = await visible("strength-meter");
      const s = m && (await m.getAttribute("data-score"));
      return s !== null && s !== "" ? s : null;
    });
    await shot("wizard-password");
    if (Number(score) < 2) fail(`the strength meter scores the test password ${score} (< 2)`);
    await click("wizard-next");
    await fill("drive-name", DRIVE);
    await fill("mount-point", MOUNT);
    const remember = await find("remember-password");
    if (!(await remember.isSelected())) await remember.click();
    await click("wizard-finish");
    const key = await waitFor("no recovery key after Finish", 120_000, async () => {
      const err = await visible("wizard-error");
      if (err) fail(`the wizard says: ${(await err.getText()).trim()}`);
      const k = await visible("recovery-key");
      return k && (await k.getText()).trim() ? k : null;
    });
    const keyText = (await key.getText()).trim();
    if (keyText.length < 20) fail(`the recovery key is only ${keyText.length} characters`);
    console.log(`recovery key shown (${keyText.length} characters, not printed)`);
    await shot("wizard-recovery-key");
    const saved = await find("recovery-saved");
    if (!(await saved.isSelected())) await saved.click();
    await click("recovery-done");
  });

  await step("c: the drive is mounted and up to date; a 5 MB file syncs", async () => {
    await waitFor(`no ${DRIVE} card on the Drives page`, 15_000, driveCard);
    await waitUiState("Up to date", 60_000);
    const d = driveStatus();
    if (!d.mounted) fail(`nimbus status says ${DRIVE} is not mounted`);
    const mp = await text("drive-mount-point", await driveCard());
    if (!mp || !mp.includes(MOUNT)) fail(`the card shows mount point ${JSON.stringify(mp)}, not ${MOUNT}`);
    await shot("drive-up-to-date");

    const file = path.join(MOUNT, FILE);
    const data = randomBytes(5 * 1024 * 1024);
    const fd = fs.openSync(file, "w");
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const want = createHash("sha256").update(data).digest("hex");
    let seenUi = false;
    let seenCli = false;
    let syncShot = null;
    const end = Date.now() + 120_000;
    for (;;) {
      const ui = await driveState();
      const cli = driveStatus().state;
      if (ui === "Syncing" && !seenUi) {
        seenUi = true;
        syncShot = await shot("drive-syncing");
      }
      if (cli === "syncing") seenCli = true;
      if ((seenUi || seenCli) && ui === "Up to date" && cli === "up_to_date") break;
      if (Date.now() > end) fail(`no Syncing -> Up to date within 120 s (UI "${ui}", service "${cli}", saw syncing: UI ${seenUi}, service ${seenCli})`);
      await sleep(100);
    }
    console.log(`saw syncing in the UI: ${seenUi}, in nimbus status: ${seenCli}${syncShot ? "" : " (no UI screenshot of Syncing)"}`);
    await shot("drive-synced");
    if (sha256(file) !== want) fail(`${file} reads back different bytes`);
    const st = driveStatus();
    if (st.pending_files) fail(`up to date, yet ${st.pending_files} files pending`);
  });

  await step("c2: the tray menu (tray.py)", async () => {
    const [cmd, ...args] = TRAY.split(" ");
    const r = spawnSync(cmd, [...args, "--expect", "Up to date", "--pause"], { encoding: "utf8", stdio: "inherit", timeout: 120_000 });
    if (r.status !== 0) fail(`tray.py failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ""}): see its output above`);
    await waitUiState("Up to date", 30_000);
    await shot("after-tray");
  });

  await step("d: pause and resume", async () => {
    await clickInCard("drive-pause");
    await waitUiState("Paused", 15_000);
    await waitFor("nimbus status does not say paused", 10_000, () => driveStatus().paused === true);
    await shot("drive-paused");
    await clickInCard("drive-resume");
    await waitFor("nimbus status still says paused after Resume", 15_000, () => driveStatus().paused === false);
    await waitFor(`the card still says Paused after Resume`, 15_000, async () => (await driveState()) !== "Paused");
    await waitUiState("Up to date", 60_000);
  });

  await step("e: lock (with a notification), unlock from the keyring", async () => {
    const logBefore = fs.readFileSync(NOTIFY_LOG, "utf8").length;
    await clickInCard("drive-lock");
    await waitFor(`the card does not say Locked`, 30_000, async () => {
      const ok = await visible("confirm-ok");
      if (ok) await ok.click();
      return (await driveState()) === "Locked";
    });
    await waitFor("nimbus status does not say locked", 10_000, () => driveStatus().locked === true);
    await shot("drive-locked");
    const note = await waitFor(`no notification "… is locked" on the bus (dbus-monitor log ${NOTIFY_LOG})`, 15_000, () => {
      const log = fs.readFileSync(NOTIFY_LOG, "utf8").slice(logBefore);
      const m = log.match(/string "([^"]*is locked[^"]*)"/);
      return m ? m[1] : null;
    });
    if (!note.includes(DRIVE)) fail(`the lock notification does not name the drive: "${note}"`);
    console.log(`notification: "${note}"`);
    await clickInCard("drive-unlock");
    let asked = false;
    await waitFor("the drive is not up to date after Unlock", 60_000, async () => {
      const pw = await visible("unlock-password");
      if (pw && !asked) {
        asked = true;
        console.log("the unlock dialog asked for the password (the keyring was not used)");
        await shot("unlock-dialog");
        await fill("unlock-password", PASSWORD);
        await click("unlock-submit");
      }
      return (await driveState()) === "Up to date";
    });
    if (driveStatus().locked) fail("nimbus status still says locked");
    if (asked) fail("Unlock asked for the password although the wizard saved it in the keyring (remember-password)");
    console.log("unlocked from the keyring, no password asked");
    await shot("drive-unlocked");
  });

  const file = path.join(MOUNT, FILE);
  const want = sha256(file);

  await step("f: snapshots; a deleted file restored in place", async () => {
    await goto("snapshots");
    const sel = await find("snap-drive");
    const opts = await sel.findElements(By.css("option"));
    let opt = null;
    for (const o of opts) if ((await o.getAttribute("value")) === DRIVE || (await o.getText()).trim() === DRIVE) opt = o;
    if (!opt) fail(`snap-drive has no option ${DRIVE}`);
    await opt.click();
    const snaps = await waitFor("no snapshot of the drive listed", 30_000, async () => {
      const s = await driver.findElements(tid("snap-item"));
      return s.length ? s : null;
    });
    console.log(`${snaps.length} snapshots listed; opening the newest`);
    await shot("snapshots");
    await snaps[0].click();
    const entry = By.css(`[data-testid="entry"][data-name="${FILE}"]`);
    await waitFor(`${FILE} is not in the newest snapshot`, 15_000, async () => (await driver.findElements(entry)).length > 0);
    await shot("snapshot-entries");

    fs.unlinkSync(file);
    await waitFor("the deletion did not sync (nimbus status up_to_date, nothing pending)", 60_000, () => {
      const d = driveStatus();
      if (d.state === "up_to_date" && !d.pending_files) return d;
      throw new Error(`${d.state}, ${d.pending_files} files (${d.pending_bytes} bytes) pending`);
    });
    if (fs.existsSync(file)) fail(`${file} is still there after unlink`);
    const row = (await driver.findElements(entry))[0];
    const restore = row && (await row.findElements(tid("entry-restore")))[0];
    if (!restore) fail(`no entry-restore button on the ${FILE} row (the snapshot view changed after the deletion?)`);
    await restore.click();
    await click("restore-in-place");
    await click("restore-confirm");
    const result = await waitFor("no restore-result after Restore", 60_000, () => visible("restore-result"));
    console.log(`restore: ${(await result.getText()).trim()}`);
    await shot("restored");
    await waitFor(`${file} did not come back`, 30_000, () => fs.existsSync(file));
    if (sha256(file) !== want) fail(`the restored ${FILE} has other bytes than the one written`);
    console.log(`${FILE} back in place, same sha256`);
  });

  await stepOtherDevice();

  await step("g: Activity and Settings", async () => {
    await goto("activity");
    await sleep(1000);
    const items = await driver.findElements(tid("activity-item"));
    const kinds = [];
    for (const i of items) kinds.push(await i.getAttribute("data-kind"));
    console.log(`activity: ${items.length} items (${[...new Set(kinds)].join(", ")})`);
    await shot("activity");
    await goto("settings");
    const notif = await find("set-notifications");
    const was = await notif.isSelected();
    await notif.click();
    if ((await notif.isSelected()) === was) fail("set-notifications did not toggle");
    await notif.click();
    if ((await notif.isSelected()) !== was) fail("set-notifications did not toggle back");
    await click("settings-save");
    await sleep(500);
    if (!was) fail("notifications were off in Settings, though the lock notification came");
    await shot("settings");
  });
  await stepKeyboard();
}

// --- another device -------------------------------------------------------------------------

// A second device: `nimbus mount` of the same vault with a state folder of
// its own (so its own device id), as two_devices.sh and the service test do.
const DEVICE2 = {
  state: path.join(OUT, "device2-state"),
  mount: path.join(OUT, "device2-mnt"),
};

function device2(args, timeout = 120_000) {
  const store =
    `s3://${garage.bucket}/app-e2e?endpoint=${encodeURIComponent(garage.endpoint)}` + `&region=${garage.region}`;
  const env = {
    ...process.env,
    NIMBUS_STATE_DIR: DEVICE2.state,
    NIMBUS_PASSWORD: PASSWORD,
    AWS_ACCESS_KEY_ID: garage.accessKey,
    AWS_SECRET_ACCESS_KEY: garage.secretKey,
  };
  const full = args[0] === "mount" ? ["mount", store, DEVICE2.mount, ...args.slice(1)] : args;
  const r = spawnSync(NIMBUS, full, { encoding: "utf8", timeout, env });
  if (r.status !== 0) fail(`nimbus ${full.join(" ")} (device 2) failed (${r.status}): ${(r.stderr || "").trim()}`);
  return r.stdout;
}

function write(file, text) {
  const fd = fs.openSync(file, "w");
  fs.writeSync(fd, text);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

// The Activity items whose kind is `kind`, as [text, element].
async function activityItems(kind) {
  const out = [];
  for (const i of await driver.findElements(tid("activity-item"))) {
    if ((await i.getAttribute("data-kind")) === kind) out.push([(await i.getText()).trim(), i]);
  }
  return out;
}

async function stepOtherDevice() {
  await step("g0: another device's change in Activity; a conflict listed with Open and Show in folder", async () => {
    fs.mkdirSync(DEVICE2.mount, { recursive: true });
    device2(["mount", "--commit-delay", "1", "--poll-interval", "1"]);
    try {
      write(path.join(DEVICE2.mount, "from-device-2.txt"), "written on the other device\n");
      write(path.join(DEVICE2.mount, "plan.txt"), "the plan, first draft\n");
      device2(["sync", DEVICE2.mount]);
      await goto("activity");
      const updated = await waitFor('no "Updated from …" item in Activity after the other device wrote', 90_000, async () => {
        const found = (await activityItems("change")).find(([t]) => /Updated from .+: \d+ files?/.test(t));
        return found ? found[0] : null;
      });
      console.log(`activity: ${updated.split("\n").join(" | ")}`);
      const here = path.join(MOUNT, "from-device-2.txt");
      if (fs.readFileSync(here, "utf8") !== "written on the other device\n") fail(`${here} does not hold what device 2 wrote`);
      await waitFor("plan.txt from device 2 did not arrive", 60_000, () => fs.existsSync(path.join(MOUNT, "plan.txt")));

      // Both change plan.txt before either sees the other's change: this
      // drive is paused (it neither commits nor takes the other's in).
      const pause = spawnSync(NIMBUS, ["pause", DRIVE], { encoding: "utf8", timeout: 30_000 });
      if (pause.status !== 0) fail(`nimbus pause ${DRIVE} failed: ${pause.stderr}`);
      write(path.join(MOUNT, "plan.txt"), "the plan, as edited in the app's drive\n");
      write(path.join(DEVICE2.mount, "plan.txt"), "the plan, as edited on device 2\n");
      device2(["sync", DEVICE2.mount]);
      await waitFor("the drive does not see device 2's change waiting", 60_000, () => driveStatus().sync?.behind === true);
      const resume = spawnSync(NIMBUS, ["resume", DRIVE], { encoding: "utf8", timeout: 30_000 });
      if (resume.status !== 0) fail(`nimbus resume ${DRIVE} failed: ${resume.stderr}`);
      const [ctext, citem] = await waitFor("no conflict in Activity after both devices changed plan.txt", 90_000, async () => {
        const c = await activityItems("conflict");
        return c.length ? c[0] : null;
      });
      console.log(`conflict: ${ctext.split("\n").join(" | ")}`);
      if (!ctext.includes("/plan.txt") || !ctext.includes("plan (conflict ")) fail(`the conflict item does not name plan.txt and its copy: ${ctext}`);
      for (const id of ["activity-open", "activity-show"]) {
        if (!(await citem.findElements(tid(id))).length) fail(`the conflict item has no ${id} button`);
      }
      const copies = fs.readdirSync(MOUNT).filter((n) => n.startsWith("plan (conflict "));
      if (copies.length !== 1) fail(`expected one conflict copy of plan.txt in the drive, found ${JSON.stringify(copies)}`);
      const versions = [fs.readFileSync(path.join(MOUNT, "plan.txt"), "utf8"), fs.readFileSync(path.join(MOUNT, copies[0]), "utf8")].sort();
      const wanted = ["the plan, as edited in the app's drive\n", "the plan, as edited on device 2\n"];
      if (JSON.stringify(versions) !== JSON.stringify(wanted)) fail(`both versions are not kept: ${JSON.stringify(versions)}`);
      await citem.getDriver().executeScript("arguments[0].scrollIntoView({block: 'center'})", citem);
      await shot("activity-conflict");
      const notes = fs.readFileSync(NOTIFY_LOG, "utf8");
      if (!/string "Conflict in [^"]*plan\.txt"/.test(notes)) fail(`no "Conflict in … plan.txt" notification on the bus (${NOTIFY_LOG})`);

      await goto("drives");
      const dev = await waitFor("the drive card lists no other device", 30_000, async () => {
        const d = (await (await driveCard()).findElements(tid("drive-device")))[0];
        return d ? (await d.getText()).trim() : null;
      });
      console.log(`other device on the card: ${dev}`);
      const conflicts = await text("drive-conflicts", await driveCard());
      if (!conflicts || !conflicts.startsWith("1 file kept in two versions")) fail(`the card's conflicts line says ${JSON.stringify(conflicts)}`);
      await shot("drives-devices");
    } finally {
      spawnSync(NIMBUS, ["unmount", DEVICE2.mount, "-q"], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, NIMBUS_STATE_DIR: DEVICE2.state },
      });
    }
  });
}

// --- the keyboard ---------------------------------------------------------------------------

// What has the focus: its data-testid, tag, text and outline.
async function focused() {
  return driver.executeScript(() => {
    const e = document.activeElement;
    const cs = e ? getComputedStyle(e) : null;
    return e
      ? {
          testid: e.getAttribute("data-testid"),
          tag: e.tagName.toLowerCase(),
          text: (e.textContent || "").trim().slice(0, 40),
          outline: cs ? `${cs.outlineStyle} ${cs.outlineWidth}` : "",
          ring: !!cs && cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0,
          checked: e.checked === undefined ? null : e.checked,
        }
      : null;
  });
}

// press(...keys): keys typed at whatever has the focus, as a person would.
async function press(...keys) {
  await driver.actions({ async: true }).sendKeys(...keys).perform();
  await sleep(150);
}

// tabTo(testid, back): Tab (or Shift+Tab) until the element has the focus;
// fails after 25 presses. Each stop must show a focus ring.
async function tabTo(testid, back = false) {
  const seen = [];
  for (let i = 0; i < 25; i++) {
    if (back) {
      await driver.actions({ async: true }).keyDown(Key.SHIFT).sendKeys(Key.TAB).keyUp(Key.SHIFT).perform();
      await sleep(150);
    } else await press(Key.TAB);
    const f = await focused();
    seen.push(f?.testid || f?.tag);
    if (f && f.tag !== "body" && !f.ring)
      fail(`the focused ${f.tag} ${JSON.stringify(f.testid || f.text)} shows no focus ring (outline: ${f.outline})`);
    if (f?.testid === testid) return f;
  }
  fail(`${back ? "Shift+Tab" : "Tab"} never reached [data-testid="${testid}"] (focus went: ${seen.join(" -> ")})`);
}

function autostartEntries() {
  try {
    return fs.readdirSync(AUTOSTART_DIR).filter((f) => f.endsWith(".desktop"));
  } catch {
    return [];
  }
}

async function stepKeyboard() {
  await step("h: the keyboard alone; start at login", async () => {
    await goto("drives");
    const first = await focused();
    if (first?.tag !== "h1") fail(`after opening a page the focus is on ${JSON.stringify(first)}, not its heading`);
    // Back from the page's heading into the navigation, to Settings.
    await tabTo("nav-settings", true);
    await press(Key.ENTER);
    await waitFor("Enter on the Settings button did not open Settings", 10_000, async () => {
      const f = await focused();
      return f?.tag === "h1" && /settings/i.test(f.text);
    });
    const current = await (await find("nav-settings")).getAttribute("aria-current");
    if (current !== "page") fail(`the Settings button is not marked as the current page (aria-current=${current})`);
    if (autostartEntries().length) fail(`an autostart entry exists before it was turned on: ${autostartEntries()}`);
    const sw = await tabTo("set-autostart");
    if (sw.checked) fail("start at login is on in a fresh home");
    await press(Key.SPACE);
    if (!(await focused()).checked) fail("Space did not turn the start-at-login switch on");
    await tabTo("settings-save");
    await press(Key.ENTER);
    const entry = await waitFor(`no autostart entry in ${AUTOSTART_DIR} after saving start at login`, 10_000, () =>
      autostartEntries()[0],
    );
    const desktop = fs.readFileSync(path.join(AUTOSTART_DIR, entry), "utf8");
    const exec = (desktop.match(/^Exec=(.*)$/m) || [])[1] || "";
    if (!exec.includes(APP) || !exec.includes("--hidden"))
      fail(`the autostart entry ${entry} does not start ${APP} --hidden: Exec=${exec}`);
    console.log(`start at login: ${path.join(AUTOSTART_DIR, entry)}: Exec=${exec}`);
    await shot("settings-keyboard");
    // The page reads the switch back from what is installed.
    await goto("drives");
    await goto("settings");
    const on = await find("set-autostart");
    if (!(await on.isSelected())) fail("start at login shows off after it was saved on");
    await on.click();
    await click("settings-save");
    await waitFor(`the autostart entry is still in ${AUTOSTART_DIR} after turning start at login off`, 10_000, () =>
      autostartEntries().length === 0 ? "gone" : null,
    );
    console.log("start at login off again: the entry is gone");
  });
}

let code = 0;
try {
  await main();
  console.log(`\ne2e: all steps passed in ${secs()} s`);
} catch (e) {
  code = 1;
  if (!(e instanceof Failure)) console.error(e);
} finally {
  if (driver) await driver.quit().catch((e) => console.error(`closing the session: ${e.message}`));
}
process.exit(code);
