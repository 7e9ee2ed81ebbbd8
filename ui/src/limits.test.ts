import { describe, expect, it } from "vitest";
import { limitText, parseLimit, parseMinutes } from "./limits";

describe("parseLimit", () => {
  it("reads kB/s into bytes per second", () => {
    expect(parseLimit("500")).toEqual({ ok: true, value: 500_000 });
    expect(parseLimit(" 1 ")).toEqual({ ok: true, value: 1000 });
  });
  it("reads empty as no limit", () => {
    expect(parseLimit("")).toEqual({ ok: true, value: null });
    expect(parseLimit("  ")).toEqual({ ok: true, value: null });
  });
  it("refuses zero, fractions, words and huge numbers", () => {
    const msg = "Give a whole number of kB/s from 1, or leave it empty for no limit.";
    expect(parseLimit("0")).toEqual({ ok: false, error: msg });
    expect(parseLimit("1.5")).toEqual({ ok: false, error: msg });
    expect(parseLimit("-3")).toEqual({ ok: false, error: msg });
    expect(parseLimit("fast")).toEqual({ ok: false, error: msg });
    expect(parseLimit("10000001").ok).toBe(false);
  });
});

describe("limitText", () => {
  it("shows bytes per second as kB/s", () => {
    expect(limitText(null)).toBe("");
    expect(limitText(0)).toBe("");
    expect(limitText(500_000)).toBe("500");
    expect(limitText(1_500)).toBe("2");
  });
});

describe("parseMinutes", () => {
  it("reads minutes, 0 for never", () => {
    expect(parseMinutes("0")).toEqual({ ok: true, value: 0 });
    expect(parseMinutes("15")).toEqual({ ok: true, value: 15 });
  });
  it("refuses what is not a whole number", () => {
    expect(parseMinutes("")).toEqual({ ok: false, error: "Give a whole number of minutes (0 = never)." });
    expect(parseMinutes("2.5").ok).toBe(false);
    expect(parseMinutes("10081").ok).toBe(false);
  });
});
