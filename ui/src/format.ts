// Text shown to a person: sizes, rates, times and drive states. Pure
// functions without the DOM, so each string is pinned by a unit test.

import type { DeviceInfo, DriveState } from "./bindings";

const UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/**
 * Rounds like Rust's `{:.N}`: to the nearest, and an exact tie to the even
 * digit (JavaScript's toFixed sends ties up). Only `digits` 0 and 1 are used.
 */
function fixed(v: number, digits: 0 | 1): string {
  const frac = v - Math.floor(v);
  if (digits === 0 && frac === 0.5) {
    const f = Math.floor(v);
    return String(f % 2 === 0 ? f : f + 1);
  }
  if (digits === 1 && frac === 0.25) {
    // x.25 lies between x.2 and x.3; the even digit is 2.
    return `${Math.floor(v)}.2`;
  }
  return v.toFixed(digits);
}

/**
 * Decimal units, as nimbus-api's `human_bytes`: `0 B`, `999 B`, `1.5 kB`,
 * `48 MB` (one decimal below 10, none from 10 on).
 */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) n = 0;
  n = Math.floor(n);
  let v = n;
  let u = 0;
  while (v >= 1000 && u < UNITS.length - 1) {
    v /= 1000;
    u += 1;
  }
  if (u === 0) return `${n} B`;
  return `${fixed(v, v < 10 ? 1 : 0)} ${UNITS[u]}`;
}

/** A transfer rate in bytes per second: `1.2 MB/s`. */
export function humanRate(bytesPerSec: number): string {
  return `${humanBytes(bytesPerSec)}/s`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function startOfDay(d: Date): number {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** Whole calendar days from `then` to `now` in local time (0 = same day). */
export function daysBetween(then: Date, now: Date): number {
  return Math.round((startOfDay(now) - startOfDay(then)) / 86_400_000);
}

/** `3 Mar`, or `3 Mar 2025` when not in the year of `now`. */
export function shortDate(then: Date, now: Date): string {
  const day = `${then.getDate()} ${MONTHS[then.getMonth()]}`;
  return then.getFullYear() === now.getFullYear() ? day : `${day} ${then.getFullYear()}`;
}

/** `14:05` in local time. */
export function clockTime(d: Date): string {
  const p = (x: number) => String(x).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * How long ago a unix time (seconds) was: `just now`, `5 min ago`,
 * `2 h ago`, `yesterday`, then a date. A time in the future (clocks that
 * disagree) reads `just now`.
 */
export function relativeTime(unixSecs: number, nowMs: number = Date.now()): string {
  const diff = Math.floor(nowMs / 1000 - unixSecs);
  if (diff < 60) return "just now";
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff < 86_400) return `${Math.floor(diff / 3600)} h ago`;
  const then = new Date(unixSecs * 1000);
  const now = new Date(nowMs);
  if (daysBetween(then, now) <= 1) return "yesterday";
  return shortDate(then, now);
}

/**
 * The heading of a day in the snapshot time line: `Today`, `Yesterday`,
 * then `Tue 3 Mar` (with the year when it is not this year's).
 */
export function dayHeading(unixSecs: number, nowMs: number = Date.now()): string {
  const then = new Date(unixSecs * 1000);
  const now = new Date(nowMs);
  const days = daysBetween(then, now);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][then.getDay()];
  return `${wd} ${shortDate(then, now)}`;
}

/** A key that is the same for two times on the same local day. */
export function dayKey(unixSecs: number): string {
  const d = new Date(unixSecs * 1000);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

const STATE_LABELS: Record<DriveState, string> = {
  starting: "Starting",
  unmounted: "Not mounted",
  locked: "Locked",
  paused: "Paused",
  syncing: "Syncing",
  receiving: "Receiving changes",
  up_to_date: "Up to date",
  offline: "Offline",
  error: "Error",
  unknown: "Unknown",
};

export function stateLabel(state: DriveState): string {
  return STATE_LABELS[state] ?? "Unknown";
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `3 files · 12 MB not yet uploaded`, or `Everything is uploaded`. */
export function pendingLine(files: number, bytes: number): string {
  if (files <= 0 && bytes <= 0) return "Everything is uploaded";
  if (files <= 0) return `${humanBytes(bytes)} not yet uploaded`;
  return `${plural(files, "file", "files")} · ${humanBytes(bytes)} not yet uploaded`;
}

/** Share of the cache in use, 0..100, for a bar. */
export function cachePercent(used: number, limit: number): number {
  if (limit <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round((used / limit) * 100)));
}

/** `1.2 GB of 2.1 GB used on this device`. */
export function cacheLine(used: number, limit: number): string {
  if (limit <= 0) return `${humanBytes(used)} used on this device`;
  return `${humanBytes(used)} of ${humanBytes(limit)} used on this device`;
}

/** `Last sync 2 min ago`, or `Not synced yet`. */
export function lastSyncLine(lastSync: number | null, nowMs: number = Date.now()): string {
  return lastSync === null ? "Not synced yet" : `Last sync ${relativeTime(lastSync, nowMs)}`;
}

/**
 * Another device of a drive's vault, for the Drives page: `laptop ·
 * changed 5 min ago · up to date`, or `… · changes waiting` while its
 * latest change is not here yet. A device without a name shows its short
 * id.
 */
export function deviceLine(d: DeviceInfo, nowMs: number = Date.now()): string {
  const name = d.name ? d.name : `device ${d.short_id ?? "?"}`;
  const when = d.last_seen != null ? ` · changed ${relativeTime(d.last_seen, nowMs)}` : "";
  return `${name}${when} · ${d.merged ? "up to date" : "changes waiting"}`;
}

/** `2 files kept in two versions`: the conflict copies of a drive. */
export function conflictsLine(n: number): string {
  return n === 1 ? "1 file kept in two versions" : `${n} files kept in two versions`;
}

/** `↑ 1.2 MB/s · ↓ 300 kB/s`, or null when nothing moves. */
export function ratesLine(up: number, down: number): string | null {
  if (up <= 0 && down <= 0) return null;
  return `↑ ${humanRate(up)} · ↓ ${humanRate(down)}`;
}

/** The label of a password strength score 0..4. */
export function strengthLabel(score: number): string {
  const labels = ["Very weak", "Weak", "Fair", "Strong", "Very strong"];
  return labels[Math.max(0, Math.min(4, Math.round(score)))];
}

/** `Restored 3 files (12 MB) to /path`. */
export function restoredLine(files: number, bytes: number, to: string): string {
  return `Restored ${plural(files, "file", "files")} (${humanBytes(bytes)}) to ${to}`;
}
