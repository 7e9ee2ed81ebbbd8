// The add-a-drive wizard's logic, without the DOM: the store address built
// from the form, and the checks of each step. Checks answer a map from the
// field's test id (`s3-bucket`, `drive-name` ...) to what is wrong with it,
// so the page shows each message under its field as `error-<test id>`.

import type { Credentials, UiErrorCode } from "./bindings";

export type Kind = "s3" | "webdav" | "sftp" | "local";
export type Errors = Record<string, string>;

export type S3PresetId = "aws" | "b2" | "r2" | "wasabi" | "other";
export type S3Preset = {
  id: S3PresetId;
  label: string;
  /** `{region}` is replaced by the region; empty means AWS itself. */
  endpoint: string;
  region: string;
  regionHint: string;
};

export const R2_ACCOUNT = "<account-id>";

export const S3_PRESETS: S3Preset[] = [
  { id: "aws", label: "Amazon S3", endpoint: "", region: "us-east-1", regionHint: "us-east-1" },
  {
    id: "b2",
    label: "Backblaze B2",
    endpoint: "https://s3.{region}.backblazeb2.com",
    region: "us-west-004",
    regionHint: "us-west-004",
  },
  {
    id: "r2",
    label: "Cloudflare R2",
    endpoint: `https://${R2_ACCOUNT}.r2.cloudflarestorage.com`,
    region: "auto",
    regionHint: "auto",
  },
  {
    id: "wasabi",
    label: "Wasabi",
    endpoint: "https://s3.{region}.wasabisys.com",
    region: "us-east-1",
    regionHint: "us-east-1",
  },
  { id: "other", label: "MinIO, Garage or other", endpoint: "", region: "", regionHint: "garage" },
];

export function preset(id: S3PresetId): S3Preset {
  return S3_PRESETS.find((p) => p.id === id) ?? S3_PRESETS[S3_PRESETS.length - 1];
}

/** The endpoint a preset gives for a region. */
export function presetEndpoint(id: S3PresetId, region: string): string {
  return preset(id).endpoint.replace("{region}", region.trim());
}

export type S3Form = {
  preset: S3PresetId;
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  accessKey: string;
  secretKey: string;
};
export type WebDavForm = { url: string; user: string; password: string };
export type SftpForm = { host: string; port: string; user: string; path: string; password: string };
export type LocalForm = { path: string };
export type StoreForm = { kind: Kind; s3: S3Form; webdav: WebDavForm; sftp: SftpForm; local: LocalForm };

export function emptyStoreForm(): StoreForm {
  const aws = preset("aws");
  return {
    kind: "s3",
    s3: {
      preset: "aws",
      endpoint: aws.endpoint,
      region: aws.region,
      bucket: "",
      prefix: "",
      accessKey: "",
      secretKey: "",
    },
    webdav: { url: "", user: "", password: "" },
    sftp: { host: "", port: "22", user: "", path: "", password: "" },
    local: { path: "" },
  };
}

/** A new S3 form after choosing a preset: its endpoint and region filled in. */
export function choosePreset(form: S3Form, id: S3PresetId): S3Form {
  const p = preset(id);
  return { ...form, preset: id, region: p.region, endpoint: presetEndpoint(id, p.region) };
}

/**
 * A new S3 form after the region changed: the endpoint follows it while it
 * is still the preset's own (a typed endpoint is left alone).
 */
export function changeRegion(form: S3Form, region: string): S3Form {
  const follows = form.endpoint === presetEndpoint(form.preset, form.region);
  return { ...form, region, endpoint: follows ? presetEndpoint(form.preset, region) : form.endpoint };
}

// ---- Pieces of addresses ----

/** A path's segments, each percent-encoded; empty segments dropped. */
export function encodePath(path: string): string {
  return path
    .split("/")
    .filter((s) => s !== "")
    .map(encodeURIComponent)
    .join("/");
}

/**
 * A query value escaped only where a query needs it, as the service writes
 * addresses, so an endpoint stays readable: `endpoint=http://127.0.0.1:3900`.
 */
export function encodeQueryValue(v: string): string {
  return v.replace(/[\u0000-\u0020\u007f#%&+=]/g, (c) => {
    const code = c.charCodeAt(0);
    return `%${code.toString(16).toUpperCase().padStart(2, "0")}`;
  });
}

function segmentsOf(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

function badSegment(path: string): boolean {
  return segmentsOf(path).some((s) => s === "." || s === ".." || s.includes("\\"));
}

/** A path is absolute: `/x`, `~/x` (the home folder) or `C:\x` / `C:/x`. */
export function isAbsolutePath(p: string): boolean {
  const t = p.trim();
  return t.startsWith("/") || t === "~" || t.startsWith("~/") || /^[A-Za-z]:[\\/]/.test(t);
}

type Parsed = { url: URL } | { error: string };

function parseHttpUrl(text: string): Parsed {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { error: "This is not a web address. Write it as https://host or https://host:port." };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { error: "The address must start with http:// or https://." };
  }
  if (url.hostname === "") return { error: "The address names no server." };
  return { url };
}

const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$/;

/** A host name, an IPv4 address or a bracketed IPv6 address. */
export function isHost(h: string): boolean {
  return HOST_RE.test(h) && h.length <= 253;
}

function validPort(p: string): boolean {
  if (!/^\d{1,5}$/.test(p)) return false;
  const n = Number(p);
  return n >= 1 && n <= 65535;
}

// ---- Step 2: the store ----

export function checkBucket(b: string): string | null {
  if (b === "") return "Give the bucket's name.";
  if (b.length < 3 || b.length > 63) return "A bucket name has 3 to 63 characters.";
  if (!/^[a-z0-9.-]+$/.test(b)) return "A bucket name has only lowercase letters, digits, dots and dashes.";
  return null;
}

export function checkEndpoint(e: string): string | null {
  const t = e.trim();
  if (t === "") return "Give the service's address, such as https://s3.example.com or http://127.0.0.1:3900.";
  if (t.includes(R2_ACCOUNT)) return `Replace ${R2_ACCOUNT} with your Cloudflare account ID.`;
  const p = parseHttpUrl(t);
  if ("error" in p) return p.error;
  const u = p.url;
  if (u.username !== "" || u.password !== "") {
    return "Leave the keys out of the address: they go in the key fields below.";
  }
  if ((u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    return "Give only http(s)://host[:port], without a path.";
  }
  return null;
}

function checkFolder(path: string, field: string, errors: Errors) {
  if (badSegment(path)) errors[field] = "A folder path cannot have `.` or `..` parts or backslashes.";
}

export function checkS3(f: S3Form): Errors {
  const errors: Errors = {};
  const bucket = checkBucket(f.bucket.trim());
  if (bucket) errors["s3-bucket"] = bucket;
  if (f.preset !== "aws" || f.endpoint.trim() !== "") {
    const ep = checkEndpoint(f.endpoint);
    if (ep) errors["s3-endpoint"] = ep;
  }
  const region = f.region.trim();
  if (region !== "" && !/^[A-Za-z0-9_-]+$/.test(region)) {
    errors["s3-region"] = "A region has only letters, digits, dashes and underscores.";
  }
  checkFolder(f.prefix, "s3-prefix", errors);
  const ak = f.accessKey.trim();
  const sk = f.secretKey.trim();
  if (ak === "" && sk !== "") errors["s3-access-key"] = "Give the access key ID that goes with this secret.";
  if (ak !== "" && sk === "") errors["s3-secret-key"] = "Give the secret access key of this key ID.";
  if (ak === "" && sk === "" && f.preset !== "aws") {
    errors["s3-access-key"] = "Give the access key ID.";
    errors["s3-secret-key"] = "Give the secret access key.";
  }
  return errors;
}

export function checkWebDav(f: WebDavForm): Errors {
  const errors: Errors = {};
  if (f.url.trim() === "") {
    errors["webdav-url"] = "Give the folder's address, such as https://cloud.example.com/remote.php/dav/files/ann/Nimbus.";
    return errors;
  }
  const p = parseHttpUrl(f.url);
  if ("error" in p) {
    errors["webdav-url"] = p.error;
    return errors;
  }
  if (p.url.username !== "" || p.url.password !== "") {
    errors["webdav-url"] = "Leave the user name and password out of the address: they have their own fields.";
  } else if (p.url.search !== "" || p.url.hash !== "") {
    errors["webdav-url"] = "The address cannot have a ? or # part.";
  } else if (badSegment(decodeURIComponentSafe(p.url.pathname))) {
    errors["webdav-url"] = "The folder cannot have `.` or `..` parts or backslashes.";
  }
  if (/[\u0000-\u001f\u007f]/.test(f.user)) errors["webdav-user"] = "A user name cannot hold tabs or line breaks.";
  return errors;
}

export function checkSftp(f: SftpForm): Errors {
  const errors: Errors = {};
  const host = f.host.trim();
  if (host === "") errors["sftp-host"] = "Give the server's name or address.";
  else if (!isHost(host)) errors["sftp-host"] = "Give only the server's name or IP address, such as nas.local.";
  const port = f.port.trim();
  if (port !== "" && !validPort(port)) errors["sftp-port"] = "A port is a number from 1 to 65535.";
  if (/[\s@/:]/.test(f.user.trim())) errors["sftp-user"] = "A user name cannot hold spaces, @, / or :.";
  const path = f.path.trim();
  if (path === "") errors["sftp-path"] = "Give the folder on the server, such as /srv/nimbus or ~/nimbus.";
  else checkFolder(path, "sftp-path", errors);
  return errors;
}

export function checkLocal(f: LocalForm): Errors {
  const errors: Errors = {};
  const path = f.path.trim();
  if (path === "") errors["local-path"] = "Give the folder, such as /srv/vault or ~/Vault.";
  else if (!isAbsolutePath(path)) errors["local-path"] = "Give the full path, starting with / or ~/.";
  return errors;
}

export function checkStore(f: StoreForm): Errors {
  switch (f.kind) {
    case "s3":
      return checkS3(f.s3);
    case "webdav":
      return checkWebDav(f.webdav);
    case "sftp":
      return checkSftp(f.sftp);
    case "local":
      return checkLocal(f.local);
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function userPart(user: string): string {
  const u = user.trim();
  return u === "" ? "" : `${encodeURIComponent(u)}@`;
}

/** The store address of the form, or null while the form has errors. */
export function storeAddress(f: StoreForm): string | null {
  if (Object.keys(checkStore(f)).length > 0) return null;
  switch (f.kind) {
    case "s3": {
      const s = f.s3;
      const prefix = encodePath(s.prefix.trim());
      const query: string[] = [];
      const endpoint = s.endpoint.trim().replace(/\/+$/, "");
      if (endpoint !== "") query.push(`endpoint=${encodeQueryValue(endpoint)}`);
      if (s.region.trim() !== "") query.push(`region=${encodeQueryValue(s.region.trim())}`);
      return `s3://${s.bucket.trim()}${prefix ? `/${prefix}` : ""}${query.length ? `?${query.join("&")}` : ""}`;
    }
    case "webdav": {
      const u = new URL(f.webdav.url.trim());
      const scheme = u.protocol === "https:" ? "webdavs" : "webdav";
      // `host` keeps a port that is not the scheme's default, and IPv6 brackets.
      const path = u.pathname
        .split("/")
        .filter((seg) => seg !== "")
        .map((seg) => encodeURIComponent(decodeURIComponentSafe(seg)))
        .join("/");
      return `${scheme}://${userPart(f.webdav.user)}${u.host}/${path}`;
    }
    case "sftp": {
      const s = f.sftp;
      const port = s.port.trim();
      const authority = `${userPart(s.user)}${s.host.trim()}${port !== "" && port !== "22" ? `:${Number(port)}` : ""}`;
      const path = s.path.trim();
      // A path not starting with `/` is in the login folder, written `/~/…`.
      const inHome = !path.startsWith("/");
      const rest = encodePath(path.replace(/^~(\/|$)/, ""));
      return inHome ? `sftp://${authority}/~/${rest}` : `sftp://${authority}/${rest}`;
    }
    case "local":
      return f.local.path.trim();
  }
}

/** The secrets the form gives, for `testStore` and `addDrive`. */
export function storeCredentials(f: StoreForm): Credentials {
  const orNull = (s: string) => (s === "" ? null : s);
  switch (f.kind) {
    case "s3":
      return {
        access_key_id: orNull(f.s3.accessKey.trim()),
        secret_access_key: orNull(f.s3.secretKey.trim()),
        password: null,
      };
    case "webdav":
      return { access_key_id: null, secret_access_key: null, password: orNull(f.webdav.password) };
    case "sftp":
      return { access_key_id: null, secret_access_key: null, password: orNull(f.sftp.password) };
    case "local":
      return { access_key_id: null, secret_access_key: null, password: null };
  }
}

/** A name for the drive, proposed from the store (`photos` of s3://photos). */
export function suggestName(f: StoreForm, taken: string[]): string {
  let base = "";
  switch (f.kind) {
    case "s3":
      base = segmentsOf(f.s3.prefix).pop() ?? f.s3.bucket;
      break;
    case "webdav":
      try {
        base = segmentsOf(decodeURIComponentSafe(new URL(f.webdav.url.trim()).pathname)).pop() ?? "";
      } catch {
        base = "";
      }
      break;
    case "sftp":
      base = segmentsOf(f.sftp.path).filter((s) => s !== "~").pop() ?? "";
      break;
    case "local":
      base = segmentsOf(f.local.path).filter((s) => s !== "~").pop() ?? "";
      break;
  }
  base = base.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+/, "").slice(0, 60) || "Nimbus";
  let name = base;
  for (let i = 2; taken.includes(name); i++) name = `${base}-${i}`;
  return name;
}

// ---- Step 3: the vault ----

export const MIN_SCORE = 2;

export function checkCreateVault(password: string, again: string, score: number | null): Errors {
  const errors: Errors = {};
  if (password === "") errors["vault-password"] = "Choose a password for the vault.";
  else if (score === null) errors["vault-password"] = "Checking the password's strength…";
  else if (score < MIN_SCORE) {
    errors["vault-password"] = "This password is too easy to guess. Make it longer, or add unrelated words.";
  }
  if (again !== password) errors["vault-password2"] = "The two passwords are not the same.";
  return errors;
}

export function checkOpenVault(password: string): Errors {
  return password === "" ? { "vault-password": "Give the vault's password." } : {};
}

// ---- Step 4: the drive ----

/** As nimbusd's `check_name`: 1–64 ASCII letters, digits, `-`, `_`, `.`, not starting with `.`. */
export function checkDriveName(name: string, taken: string[]): string | null {
  if (name === "") return "Give the drive a name.";
  if (name.length > 64) return "A drive name has at most 64 characters.";
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return "Use only letters, digits, `-`, `_` and `.` (no spaces).";
  if (name.startsWith(".")) return "A drive name cannot start with a dot.";
  if (taken.includes(name)) return `There is already a drive called ${name}.`;
  return null;
}

export const CACHE_MIN_MIB = 64;
export const CACHE_MAX_MIB = 1_048_576;
export const CACHE_DEFAULT_MIB = 2048;

export function checkCacheSize(text: string): string | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return "Give a whole number of MiB.";
  const n = Number(t);
  if (n < CACHE_MIN_MIB || n > CACHE_MAX_MIB) {
    return `Give a size from ${CACHE_MIN_MIB} to ${CACHE_MAX_MIB} MiB.`;
  }
  return null;
}

export type OfflinePaths = { paths: string[]; error: string | null };

/** One drive-relative folder per line: trimmed, empty lines dropped, leading `/` taken off. */
export function parseOfflinePaths(text: string): OfflinePaths {
  const paths: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim().replace(/^\/+/, "").replace(/\/+$/, "");
    if (line === "") continue;
    const segs = line.split("/");
    if (segs.some((s) => s === "..")) {
      return { paths: [], error: `“${raw.trim()}” goes outside the drive: remove the .. part.` };
    }
    if (segs.some((s) => s === "" || s === "." || s.includes("\\"))) {
      return { paths: [], error: `“${raw.trim()}” is not a plain folder path inside the drive.` };
    }
    if (!paths.includes(line)) paths.push(line);
  }
  return { paths, error: null };
}

export type DriveStep = { name: string; mount: string; cacheSize: string; offline: string };

export function checkDrive(f: DriveStep, taken: string[]): Errors {
  const errors: Errors = {};
  const name = checkDriveName(f.name.trim(), taken);
  if (name) errors["drive-name"] = name;
  const mount = f.mount.trim();
  if (mount === "") errors["mount-point"] = "Give the folder where the drive appears.";
  else if (!isAbsolutePath(mount)) errors["mount-point"] = "Give the full path, starting with / or ~/.";
  const cache = checkCacheSize(f.cacheSize);
  if (cache) errors["cache-size"] = cache;
  const offline = parseOfflinePaths(f.offline);
  if (offline.error) errors["offline-paths"] = offline.error;
  return errors;
}

/** Which step an error code from `addDrive` or `testStore` concerns. */
export function stepOfError(code: UiErrorCode): 2 | 3 | 4 {
  switch (code) {
    case "wrong_password":
    case "locked":
      return 3;
    case "drive_exists":
    case "local":
    case "busy":
      return 4;
    case "unavailable":
    case "store_refused":
    case "not_found":
      return 2;
    default:
      return 4;
  }
}

/** What to do about a failed connection test, by error code. */
export function testAdvice(code: UiErrorCode): string {
  switch (code) {
    case "store_refused":
      return "Check the keys or password, and that this account may read and write there.";
    case "unavailable":
      return "Check the address and your network connection, then test again.";
    case "not_found":
      return "Check the bucket or folder name; create it first if it does not exist.";
    case "invalid":
      return "Correct the address, then test again.";
    case "no_service":
      return "The Nimbus service is not running yet; wait a moment and test again.";
    default:
      return "Correct the details above, then test again.";
  }
}
