// A fake shell for working on the UI in a plain browser: `npm run dev`,
// then open http://127.0.0.1:5173/dev/mock.html (add #activity, #add,
// #snapshots, #settings or #quit for a page, ?empty for no drives,
// ?noservice for a service that does not answer). Never built
// into dist/: only index.html is.

import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { ActivityItem, AppStatus, DriveInfo, DriveStatus, Entry, SnapshotInfo, UiError } from "../src/bindings";

const now = Math.floor(Date.now() / 1000);
const empty = location.search.includes("empty");

function drive(name: string, over: Partial<DriveStatus>): DriveStatus {
  return {
    name,
    store: "",
    mount: `/home/ann/Nimbus/${name}`,
    state: "up_to_date",
    message: "All changes are uploaded.",
    mounted: true,
    locked: false,
    paused: false,
    pending_files: 0,
    pending_bytes: 0,
    transfers: { uploaded_bytes: 0, downloaded_bytes: 0, uploading_bytes: 0, upload_rate: 0, download_rate: 0 },
    cache_bytes: 1_200_000_000,
    cache_limit_bytes: 2048 * 1024 * 1024,
    upload_limit: null,
    download_limit: null,
    last_sync: now - 125,
    last_error: null,
    idle_secs: 30,
    changes_kept_here: false,
    ...over,
  };
}

const drives: DriveStatus[] = empty
  ? []
  : [
      drive("Work", {
        store: "s3://work?endpoint=http://127.0.0.1:3900&region=garage",
        state: "syncing",
        message: "Uploading 3 files.",
        pending_files: 3,
        pending_bytes: 12_000_000,
        transfers: { uploaded_bytes: 0, downloaded_bytes: 0, uploading_bytes: 4_000_000, upload_rate: 1_200_000, download_rate: 0 },
      }),
      drive("Photos", { store: "webdavs://ann@cloud.example.com/dav/Photos", state: "locked", locked: true, mounted: false, message: "Locked after 15 minutes idle." }),
    ];
for (const d of drives) d.store ||= "/srv/vault";

function status(): AppStatus {
  if (location.search.includes("noservice")) {
    return {
      service: null,
      connection_error: "Cannot reach nimbusd at /run/user/1000/nimbus.sock: connection refused.",
      summary: { line: "Starting the Nimbus service…", icon: "offline", all_paused: false, all_locked: false },
      started_service: true,
    };
  }
  return {
    service: {
      version: "0.1.0",
      pid: 4242,
      uptime_secs: 3600,
      drives,
      safe_to_shut_down: false,
      warnings: [],
      log_dir: "/home/ann/.local/state/nimbus/logs",
      auto_lock_minutes: 15,
    },
    connection_error: null,
    summary: {
      line: drives.length ? "Work: uploading 3 files (12 MB) · Photos: locked" : "No drives yet",
      icon: drives.length ? "syncing" : "idle",
      all_paused: false,
      all_locked: false,
    },
    started_service: false,
  };
}

const infos = (): DriveInfo[] =>
  drives.map((d) => ({
    name: d.name,
    store: d.store,
    mount: d.mount,
    cache_size_mib: 2048,
    commit_delay_secs: 5,
    auto_lock_minutes: 15,
    mount_at_start: true,
    remembered: d.name === "Work",
  }));

const activity: ActivityItem[] = [
  { time: now - 40, drive: "Work", kind: "change", text: "report.odt was uploaded.", hint: null },
  {
    time: now - 600,
    drive: "Work",
    kind: "conflict",
    text: "notes.md was changed here and on laptop-2; both are kept.",
    hint: "Open notes (conflict laptop-2).md, keep what you need, and delete it.",
  },
  { time: now - 7300, drive: "Photos", kind: "warning", text: "The store answered slowly.", hint: null },
  { time: now - 90_000, drive: null, kind: "error", text: "The keyring is locked.", hint: "Unlock your login keyring." },
];

const snaps: SnapshotInfo[] = [0, 1, 2, 26, 27, 50].map((h, i) => ({
  id: `s${i}`,
  name: `snap-${i}`,
  time: now - h * 3600 - 300,
  device: i % 2 ? "laptop-2" : "desktop",
}));

function browse(path: string): Entry[] {
  if (path === "") {
    return [
      { name: "report.odt", dir: false, size: 48_200_000, modified: now - 4000 },
      { name: "Projects", dir: true, size: 0, modified: now - 9000 },
      { name: "Archive", dir: true, size: 0, modified: null },
    ];
  }
  return [{ name: "plan.txt", dir: false, size: 1_500, modified: now - 100_000 }];
}

const ok = (s: string) => s;

mockIPC(
  async (cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    switch (cmd) {
      case "status":
        return status();
      case "drives":
        return infos();
      case "test_store":
        await new Promise((r) => setTimeout(r, 300));
        if (String(a.store).includes("fail")) throw { code: "unavailable", message: "Cannot reach the store: connection refused." } satisfies UiError;
        return { vault: String(a.store).includes("vault"), message: "Reached the store." };
      case "password_strength": {
        const pw = String(a.password);
        const score = Math.min(4, Math.floor(pw.length / 4));
        return {
          score,
          warning: score < 2 ? "This is similar to a commonly used password." : null,
          suggestions: score < 3 ? ["Add another word or two. Uncommon words are better."] : [],
          crack_time: ["seconds", "minutes", "hours", "months", "centuries"][score],
        };
      }
      case "suggest_mount":
        return `/home/ann/Nimbus/${String(a.name)}`;
      case "add_drive":
        return {
          message: `${(a.form as { name: string }).name} is added.`,
          recovery_key: (a.form as { create: boolean }).create ? "NMBS-7Q2K-XV4M-99PL-ZT6D-HH3R-KQ8W-2C5N" : null,
          warnings: [],
        };
      case "activity":
        return activity;
      case "snapshots":
        return snaps;
      case "browse":
        return browse(String(a.path));
      case "restore":
        return { to: (a.to as string | null) ?? "/home/ann/Nimbus/Work", files: 3, bytes: 12_000_000 };
      case "settings":
        return { start_at_login: true, notifications: true };
      case "save_settings":
        return a.settings;
      case "unlock":
        if (a.password === null) throw { code: "keyring", message: "No password saved for Photos." } satisfies UiError;
        return ok("Photos is unlocked.");
      case "quit":
        return a.force ? null : "Work has 3 files not yet uploaded.";
      default:
        return ok(`${cmd} done.`);
    }
  },
  { shouldMockEvents: true },
);

await import("../src/main");

const page = location.hash.slice(1);
if (page === "quit") {
  setTimeout(() => void emit("quit-requested", { warning: "Work has 3 files (12 MB) not yet uploaded. Quit anyway?" }), 300);
} else if (page) {
  setTimeout(() => void emit("navigate", { page }), 300);
}
