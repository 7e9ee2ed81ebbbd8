// The contract with the shell as the UI uses it: command names, argument
// names, and errors answered as `{status: "error"}`. Holds for the stand-in
// and for the file tauri-specta generates in its place.

import { afterEach, beforeAll, describe, expect, it } from "vitest";

type Call = { cmd: string; args: unknown };
let calls: Call[] = [];

beforeAll(() => {
  // The Tauri API looks for its IPC on `window`; Node has none.
  (globalThis as unknown as { window: unknown }).window = globalThis;
});

afterEach(async () => {
  const { clearMocks } = await import("@tauri-apps/api/mocks");
  clearMocks();
  calls = [];
});

async function fake(answer: (cmd: string, args: unknown) => unknown) {
  const { mockIPC } = await import("@tauri-apps/api/mocks");
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    return answer(cmd, args);
  });
  return import("./bindings");
}

describe("commands", () => {
  it("call snake_case commands with camelCase arguments", async () => {
    const { commands } = await fake(() => "ok");
    await commands.removeDrive("Work", true);
    await commands.unlock("Work", null, false);
    await commands.setLimits("Work", 1000, null);
    await commands.restore("Work", "a/b", "snap-1", null);
    expect(calls).toEqual([
      { cmd: "remove_drive", args: { drive: "Work", forgetSecrets: true } },
      { cmd: "unlock", args: { drive: "Work", password: null, remember: false } },
      { cmd: "set_limits", args: { drive: "Work", upload: 1000, download: null } },
      { cmd: "restore", args: { drive: "Work", path: "a/b", at: "snap-1", to: null } },
    ]);
  });

  it("answer ok with the data", async () => {
    const { commands } = await fake(() => ({ vault: true, message: "Reached." }));
    const creds = { access_key_id: "a", secret_access_key: "s", password: null };
    expect(await commands.testStore("s3://b", creds)).toEqual({
      status: "ok",
      data: { vault: true, message: "Reached." },
    });
    expect(calls[0]).toEqual({ cmd: "test_store", args: { store: "s3://b", credentials: creds } });
  });

  it("answer errors of the shell as status error", async () => {
    const { commands } = await fake(() => {
      throw { code: "wrong_password", message: "This is not the vault's password." };
    });
    expect(await commands.unlock("Work", "x", true)).toEqual({
      status: "error",
      error: { code: "wrong_password", message: "This is not the vault's password." },
    });
  });

  it("answer plain values for commands that cannot fail", async () => {
    const { commands } = await fake((cmd) => (cmd === "suggest_mount" ? "/home/ann/Nimbus/Work" : []));
    expect(await commands.suggestMount("Work")).toBe("/home/ann/Nimbus/Work");
    expect(await commands.activity()).toEqual([]);
    expect(calls.map((c) => c.cmd)).toEqual(["suggest_mount", "activity"]);
  });
});
