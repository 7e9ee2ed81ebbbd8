import { describe, expect, it } from "vitest";
import {
  cacheLine,
  cachePercent,
  clockTime,
  conflictsLine,
  dayHeading,
  deviceLine,
  dayKey,
  humanBytes,
  humanRate,
  lastSyncLine,
  pendingLine,
  ratesLine,
  relativeTime,
  restoredLine,
  shortDate,
  stateLabel,
  strengthLabel,
} from "./format";

/** Unix seconds of a local time, so tests hold in every time zone. */
function local(y: number, mo: number, d: number, h = 12, mi = 0, s = 0): number {
  return new Date(y, mo - 1, d, h, mi, s).getTime() / 1000;
}

describe("humanBytes", () => {
  it("writes bytes as they are below 1000", () => {
    expect(humanBytes(0)).toBe("0 B");
    expect(humanBytes(1)).toBe("1 B");
    expect(humanBytes(999)).toBe("999 B");
  });
  it("uses one decimal below 10 and none from 10", () => {
    expect(humanBytes(1000)).toBe("1.0 kB");
    expect(humanBytes(1_500)).toBe("1.5 kB");
    expect(humanBytes(1_500_000)).toBe("1.5 MB");
    expect(humanBytes(9_940)).toBe("9.9 kB");
    expect(humanBytes(10_000)).toBe("10 kB");
    expect(humanBytes(48_000_000)).toBe("48 MB");
    expect(humanBytes(48_200_000)).toBe("48 MB");
    expect(humanBytes(999_000)).toBe("999 kB");
    expect(humanBytes(1_500_000_000)).toBe("1.5 GB");
    expect(humanBytes(2_000_000_000_000)).toBe("2.0 TB");
    expect(humanBytes(3_100_000_000_000_000)).toBe("3.1 PB");
  });
  it("rounds exact ties to even, as Rust's formatter does", () => {
    expect(humanBytes(1_250)).toBe("1.2 kB");
    expect(humanBytes(1_750)).toBe("1.8 kB");
    expect(humanBytes(12_500)).toBe("12 kB");
    expect(humanBytes(13_500)).toBe("14 kB");
    expect(humanBytes(9_960)).toBe("10.0 kB");
  });
  it("keeps PB as the last unit", () => {
    expect(humanBytes(5_000_000_000_000_000_000)).toBe("5000 PB");
  });
  it("reads nonsense as zero and drops fractions", () => {
    expect(humanBytes(-5)).toBe("0 B");
    expect(humanBytes(Number.NaN)).toBe("0 B");
    expect(humanBytes(12.7)).toBe("12 B");
  });
});

describe("humanRate", () => {
  it("adds /s", () => {
    expect(humanRate(1_200_000)).toBe("1.2 MB/s");
    expect(humanRate(0)).toBe("0 B/s");
    expect(humanRate(350_000)).toBe("350 kB/s");
  });
});

describe("relativeTime", () => {
  const now = local(2026, 3, 12, 15, 0, 0) * 1000;
  it("says just now under a minute, and for the future", () => {
    expect(relativeTime(now / 1000, now)).toBe("just now");
    expect(relativeTime(now / 1000 - 59, now)).toBe("just now");
    expect(relativeTime(now / 1000 + 300, now)).toBe("just now");
  });
  it("counts minutes, then hours", () => {
    expect(relativeTime(now / 1000 - 60, now)).toBe("1 min ago");
    expect(relativeTime(now / 1000 - 5 * 60 - 30, now)).toBe("5 min ago");
    expect(relativeTime(now / 1000 - 3599, now)).toBe("59 min ago");
    expect(relativeTime(now / 1000 - 3600, now)).toBe("1 h ago");
    expect(relativeTime(now / 1000 - 2 * 3600 - 10, now)).toBe("2 h ago");
    expect(relativeTime(now / 1000 - 23 * 3600, now)).toBe("23 h ago");
  });
  it("says yesterday for the day before, then a date", () => {
    expect(relativeTime(local(2026, 3, 11, 9, 0), now)).toBe("yesterday");
    expect(relativeTime(local(2026, 3, 10, 23, 0), now)).toBe("10 Mar");
    expect(relativeTime(local(2026, 1, 2, 8, 0), now)).toBe("2 Jan");
    expect(relativeTime(local(2025, 12, 24, 8, 0), now)).toBe("24 Dec 2025");
  });
});

describe("dates", () => {
  const now = local(2026, 3, 12, 15, 0) * 1000;
  it("heads days of the time line", () => {
    expect(dayHeading(local(2026, 3, 12, 1, 0), now)).toBe("Today");
    expect(dayHeading(local(2026, 3, 11, 23, 59), now)).toBe("Yesterday");
    expect(dayHeading(local(2026, 3, 10, 8, 0), now)).toBe("Tue 10 Mar");
    expect(dayHeading(local(2025, 3, 10, 8, 0), now)).toBe("Mon 10 Mar 2025");
  });
  it("keys times by local day", () => {
    expect(dayKey(local(2026, 3, 12, 0, 1))).toBe(dayKey(local(2026, 3, 12, 23, 59)));
    expect(dayKey(local(2026, 3, 12, 0, 1))).not.toBe(dayKey(local(2026, 3, 11, 23, 59)));
  });
  it("writes clock times with two digits", () => {
    expect(clockTime(new Date(2026, 0, 1, 7, 5))).toBe("07:05");
    expect(clockTime(new Date(2026, 0, 1, 23, 59))).toBe("23:59");
  });
  it("writes short dates", () => {
    expect(shortDate(new Date(2026, 4, 3), new Date(2026, 6, 1))).toBe("3 May");
    expect(shortDate(new Date(2024, 4, 3), new Date(2026, 6, 1))).toBe("3 May 2024");
  });
});

describe("stateLabel", () => {
  it("names every state", () => {
    expect(stateLabel("up_to_date")).toBe("Up to date");
    expect(stateLabel("syncing")).toBe("Syncing");
    expect(stateLabel("paused")).toBe("Paused");
    expect(stateLabel("locked")).toBe("Locked");
    expect(stateLabel("offline")).toBe("Offline");
    expect(stateLabel("receiving")).toBe("Receiving changes");
    expect(stateLabel("error")).toBe("Error");
    expect(stateLabel("unmounted")).toBe("Not mounted");
    expect(stateLabel("starting")).toBe("Starting");
    expect(stateLabel("unknown")).toBe("Unknown");
  });
});

describe("lines", () => {
  it("says what is not yet uploaded", () => {
    expect(pendingLine(3, 12_000_000)).toBe("3 files · 12 MB not yet uploaded");
    expect(pendingLine(1, 5)).toBe("1 file · 5 B not yet uploaded");
    expect(pendingLine(0, 0)).toBe("Everything is uploaded");
    expect(pendingLine(0, 4_000)).toBe("4.0 kB not yet uploaded");
  });
  it("says how much of the cache is used", () => {
    expect(cacheLine(1_200_000_000, 2_147_483_648)).toBe("1.2 GB of 2.1 GB used on this device");
    expect(cacheLine(5, 0)).toBe("5 B used on this device");
    expect(cachePercent(1, 4)).toBe(25);
    expect(cachePercent(9, 4)).toBe(100);
    expect(cachePercent(1, 0)).toBe(0);
  });
  it("says when the drive last synced", () => {
    const now = local(2026, 3, 12, 15, 0) * 1000;
    expect(lastSyncLine(null, now)).toBe("Not synced yet");
    expect(lastSyncLine(now / 1000 - 120, now)).toBe("Last sync 2 min ago");
  });
  it("names the other devices, when each changed, and whether its change is here", () => {
    const now = local(2026, 3, 12, 15, 0) * 1000;
    expect(deviceLine({ name: "laptop", short_id: "abcdef0", last_seen: now / 1000 - 300, merged: true }, now)).toBe(
      "laptop · changed 5 min ago · up to date",
    );
    expect(deviceLine({ name: "", short_id: "abcdef0", last_seen: null, merged: false }, now)).toBe(
      "device abcdef0 · changes waiting",
    );
    expect(conflictsLine(1)).toBe("1 file kept in two versions");
    expect(conflictsLine(3)).toBe("3 files kept in two versions");
  });
  it("shows rates only when something moves", () => {
    expect(ratesLine(0, 0)).toBeNull();
    expect(ratesLine(1_200_000, 0)).toBe("↑ 1.2 MB/s · ↓ 0 B/s");
  });
  it("labels password strength", () => {
    expect([0, 1, 2, 3, 4].map(strengthLabel)).toEqual(["Very weak", "Weak", "Fair", "Strong", "Very strong"]);
    expect(strengthLabel(9)).toBe("Very strong");
    expect(strengthLabel(-1)).toBe("Very weak");
  });
  it("says what was restored", () => {
    expect(restoredLine(3, 12_000_000, "/home/ann/Nimbus/work")).toBe(
      "Restored 3 files (12 MB) to /home/ann/Nimbus/work",
    );
    expect(restoredLine(1, 900, "/tmp")).toBe("Restored 1 file (900 B) to /tmp");
  });
});
