// What every command of the shell answers (the shape tauri-specta's
// generated `typedError` gives), named for the UI's own signatures.
export type Result<T, E> = { status: "ok"; data: T } | { status: "error"; error: E };
