// Reading the numbers typed on the Settings page: transfer limits in kB/s
// (1 kB = 1000 bytes, the unit sizes are shown in everywhere) and the
// auto-lock delay in minutes.

export const BYTES_PER_KB = 1000;

export type Parsed = { ok: true; value: number | null } | { ok: false; error: string };

/** A limit in kB/s as typed, into bytes per second; empty means no limit. */
export function parseLimit(text: string): Parsed {
  const t = text.trim();
  if (t === "") return { ok: true, value: null };
  if (!/^\d+$/.test(t) || Number(t) < 1) {
    return { ok: false, error: "Give a whole number of kB/s from 1, or leave it empty for no limit." };
  }
  const n = Number(t);
  if (n > 10_000_000) return { ok: false, error: "Give at most 10000000 kB/s, or leave it empty for no limit." };
  return { ok: true, value: n * BYTES_PER_KB };
}

/** A limit in bytes per second, as shown in its kB/s field. */
export function limitText(bytesPerSec: number | null): string {
  return bytesPerSec === null || bytesPerSec <= 0 ? "" : String(Math.round(bytesPerSec / BYTES_PER_KB));
}

/** Minutes of idleness before a drive locks itself; 0 means never. */
export function parseMinutes(text: string): Parsed {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return { ok: false, error: "Give a whole number of minutes (0 = never)." };
  const n = Number(t);
  if (n > 10_080) return { ok: false, error: "Give at most 10080 minutes (a week), or 0 for never." };
  return { ok: true, value: n };
}
