import { describe, expect, it } from "vitest";
import {
  changeRegion,
  checkBucket,
  checkCacheSize,
  checkCreateVault,
  checkDrive,
  checkDriveName,
  checkEndpoint,
  checkLocal,
  checkOpenVault,
  checkS3,
  checkSftp,
  checkWebDav,
  choosePreset,
  emptyStoreForm,
  encodePath,
  encodeQueryValue,
  isAbsolutePath,
  parseOfflinePaths,
  stepOfError,
  storeAddress,
  storeCredentials,
  suggestName,
  type StoreForm,
} from "./wizard";

function s3(over: Partial<StoreForm["s3"]>): StoreForm {
  const f = emptyStoreForm();
  return { ...f, kind: "s3", s3: { ...f.s3, accessKey: "AK", secretKey: "SK", ...over } };
}
function webdav(over: Partial<StoreForm["webdav"]>): StoreForm {
  const f = emptyStoreForm();
  return { ...f, kind: "webdav", webdav: { ...f.webdav, ...over } };
}
function sftp(over: Partial<StoreForm["sftp"]>): StoreForm {
  const f = emptyStoreForm();
  return { ...f, kind: "sftp", sftp: { ...f.sftp, ...over } };
}
function local(path: string): StoreForm {
  return { ...emptyStoreForm(), kind: "local", local: { path } };
}

describe("S3 presets", () => {
  it("fill the endpoint and region", () => {
    const f = emptyStoreForm().s3;
    expect(choosePreset(f, "b2")).toMatchObject({
      preset: "b2",
      region: "us-west-004",
      endpoint: "https://s3.us-west-004.backblazeb2.com",
    });
    expect(choosePreset(f, "wasabi")).toMatchObject({ endpoint: "https://s3.us-east-1.wasabisys.com" });
    expect(choosePreset(f, "r2")).toMatchObject({
      region: "auto",
      endpoint: "https://<account-id>.r2.cloudflarestorage.com",
    });
    expect(choosePreset(f, "aws")).toMatchObject({ endpoint: "", region: "us-east-1" });
    expect(choosePreset(f, "other")).toMatchObject({ endpoint: "", region: "" });
  });
  it("let the endpoint follow the region until it is edited", () => {
    const b2 = choosePreset(emptyStoreForm().s3, "b2");
    expect(changeRegion(b2, "eu-central-003").endpoint).toBe("https://s3.eu-central-003.backblazeb2.com");
    const typed = { ...b2, endpoint: "https://b2.example.com" };
    expect(changeRegion(typed, "eu-central-003").endpoint).toBe("https://b2.example.com");
  });
});

describe("S3 addresses", () => {
  it("are s3://bucket for AWS, with the region", () => {
    expect(storeAddress(s3({ bucket: "photos" }))).toBe("s3://photos?region=us-east-1");
    expect(storeAddress(s3({ bucket: "photos", region: "" }))).toBe("s3://photos");
  });
  it("carry a prefix with each segment encoded", () => {
    expect(storeAddress(s3({ bucket: "photos", prefix: "/My Files/2024/", region: "" }))).toBe(
      "s3://photos/My%20Files/2024",
    );
    expect(storeAddress(s3({ bucket: "b.1-x", prefix: "a#b/c?d", region: "" }))).toBe("s3://b.1-x/a%23b/c%3Fd");
  });
  it("carry an endpoint readable, without a trailing slash", () => {
    const f = s3({ preset: "other", bucket: "vault", endpoint: "http://127.0.0.1:3900/", region: "garage" });
    expect(storeAddress(f)).toBe("s3://vault?endpoint=http://127.0.0.1:3900&region=garage");
  });
  it("follow the presets", () => {
    const b2 = { ...choosePreset(emptyStoreForm().s3, "b2"), bucket: "nimbus", accessKey: "k", secretKey: "s" };
    expect(storeAddress({ ...emptyStoreForm(), s3: b2 })).toBe(
      "s3://nimbus?endpoint=https://s3.us-west-004.backblazeb2.com&region=us-west-004",
    );
    const r2 = {
      ...choosePreset(emptyStoreForm().s3, "r2"),
      endpoint: "https://abc123.r2.cloudflarestorage.com",
      bucket: "nimbus",
      prefix: "laptop",
      accessKey: "k",
      secretKey: "s",
    };
    expect(storeAddress({ ...emptyStoreForm(), s3: r2 })).toBe(
      "s3://nimbus/laptop?endpoint=https://abc123.r2.cloudflarestorage.com&region=auto",
    );
  });
  it("are null while the form has errors", () => {
    expect(storeAddress(s3({ bucket: "No" }))).toBeNull();
  });
  it("never hold the keys", () => {
    const f = s3({ bucket: "photos", accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI" });
    expect(storeAddress(f)).not.toContain("AKIDEXAMPLE");
    expect(storeAddress(f)).not.toContain("wJalrXUtnFEMI");
    expect(storeCredentials(f)).toEqual({
      access_key_id: "AKIDEXAMPLE",
      secret_access_key: "wJalrXUtnFEMI",
      password: null,
    });
  });
});

describe("S3 checks", () => {
  it("check bucket names", () => {
    expect(checkBucket("abc")).toBeNull();
    expect(checkBucket("my.bucket-01")).toBeNull();
    expect(checkBucket("a".repeat(63))).toBeNull();
    expect(checkBucket("")).toBe("Give the bucket's name.");
    expect(checkBucket("ab")).toBe("A bucket name has 3 to 63 characters.");
    expect(checkBucket("a".repeat(64))).toBe("A bucket name has 3 to 63 characters.");
    expect(checkBucket("Photos")).toBe("A bucket name has only lowercase letters, digits, dots and dashes.");
    expect(checkBucket("my_bucket")).toBe("A bucket name has only lowercase letters, digits, dots and dashes.");
  });
  it("check endpoints", () => {
    expect(checkEndpoint("http://127.0.0.1:3900")).toBeNull();
    expect(checkEndpoint("https://s3.example.com")).toBeNull();
    expect(checkEndpoint("https://s3.example.com/")).toBeNull();
    expect(checkEndpoint("http://[::1]:9000")).toBeNull();
    expect(checkEndpoint("")).toMatch(/^Give the service's address/);
    expect(checkEndpoint("s3.example.com")).toBe(
      "This is not a web address. Write it as https://host or https://host:port.",
    );
    expect(checkEndpoint("ftp://s3.example.com")).toBe("The address must start with http:// or https://.");
    expect(checkEndpoint("https://s3.example.com/bucket")).toBe("Give only http(s)://host[:port], without a path.");
    expect(checkEndpoint("https://s3.example.com:70000")).toMatch(/^This is not a web address/);
    expect(checkEndpoint("https://key:secret@s3.example.com")).toMatch(/^Leave the keys out/);
    expect(checkEndpoint("https://<account-id>.r2.cloudflarestorage.com")).toBe(
      "Replace <account-id> with your Cloudflare account ID.",
    );
  });
  it("need an endpoint except for AWS", () => {
    expect(checkS3(s3({ bucket: "abc" }).s3)).toEqual({});
    expect(Object.keys(checkS3(s3({ bucket: "abc", preset: "other" }).s3))).toEqual(["s3-endpoint"]);
  });
  it("need both keys or, for AWS, neither", () => {
    expect(checkS3(s3({ bucket: "abc", accessKey: "", secretKey: "" }).s3)).toEqual({});
    expect(Object.keys(checkS3(s3({ bucket: "abc", secretKey: "" }).s3))).toEqual(["s3-secret-key"]);
    expect(Object.keys(checkS3(s3({ bucket: "abc", accessKey: "" }).s3))).toEqual(["s3-access-key"]);
    const other = s3({ bucket: "abc", preset: "other", endpoint: "http://h:1", accessKey: "", secretKey: "" });
    expect(Object.keys(checkS3(other.s3)).sort()).toEqual(["s3-access-key", "s3-secret-key"]);
  });
  it("refuse . and .. in the prefix and odd regions", () => {
    expect(Object.keys(checkS3(s3({ bucket: "abc", prefix: "a/../b" }).s3))).toEqual(["s3-prefix"]);
    expect(Object.keys(checkS3(s3({ bucket: "abc", region: "us east" }).s3))).toEqual(["s3-region"]);
  });
});

describe("WebDAV", () => {
  it("turns https into webdavs with the user", () => {
    expect(storeAddress(webdav({ url: "https://cloud.example.com/remote.php/dav/files/ann/Nimbus", user: "ann" }))).toBe(
      "webdavs://ann@cloud.example.com/remote.php/dav/files/ann/Nimbus",
    );
  });
  it("turns http into webdav and keeps the port", () => {
    expect(storeAddress(webdav({ url: "http://nas.local:8080/dav/", user: "" }))).toBe(
      "webdav://nas.local:8080/dav",
    );
    expect(storeAddress(webdav({ url: "https://nas.local", user: "bob" }))).toBe("webdavs://bob@nas.local/");
  });
  it("encodes the user and each path segment", () => {
    expect(storeAddress(webdav({ url: "https://h.example/My Files/a%20b", user: "ann@corp" }))).toBe(
      "webdavs://ann%40corp@h.example/My%20Files/a%20b",
    );
  });
  it("keeps the password out of the address", () => {
    const f = webdav({ url: "https://h.example/x", user: "ann", password: "hunter2!" });
    expect(storeAddress(f)).not.toContain("hunter2");
    expect(storeCredentials(f)).toEqual({ access_key_id: null, secret_access_key: null, password: "hunter2!" });
    expect(storeCredentials(webdav({ url: "https://h.example/x" })).password).toBeNull();
  });
  it("checks the address", () => {
    expect(checkWebDav({ url: "https://h.example/x", user: "ann", password: "" })).toEqual({});
    expect(checkWebDav({ url: "", user: "", password: "" })["webdav-url"]).toMatch(/^Give the folder's address/);
    expect(checkWebDav({ url: "ftp://h/x", user: "", password: "" })["webdav-url"]).toBe(
      "The address must start with http:// or https://.",
    );
    expect(checkWebDav({ url: "h.example/x", user: "", password: "" })["webdav-url"]).toMatch(/^This is not a web/);
    expect(checkWebDav({ url: "https://ann:pw@h.example/x", user: "", password: "" })["webdav-url"]).toMatch(
      /^Leave the user name and password out/,
    );
    expect(checkWebDav({ url: "https://h.example/x?a=1", user: "", password: "" })["webdav-url"]).toBe(
      "The address cannot have a ? or # part.",
    );
    expect(checkWebDav({ url: "https://h.example/x", user: "a\tb", password: "" })["webdav-user"]).toBe(
      "A user name cannot hold tabs or line breaks.",
    );
  });
});

describe("SFTP", () => {
  it("builds absolute folders", () => {
    expect(storeAddress(sftp({ host: "nas.local", user: "ann", path: "/srv/nimbus" }))).toBe(
      "sftp://ann@nas.local/srv/nimbus",
    );
  });
  it("leaves out port 22 and keeps others", () => {
    expect(storeAddress(sftp({ host: "nas.local", port: "2222", user: "ann", path: "/srv" }))).toBe(
      "sftp://ann@nas.local:2222/srv",
    );
    expect(storeAddress(sftp({ host: "10.0.0.5", port: "", user: "", path: "/srv" }))).toBe("sftp://10.0.0.5/srv");
  });
  it("writes folders of the login folder as /~/", () => {
    expect(storeAddress(sftp({ host: "h", user: "ann", path: "~/nimbus vault" }))).toBe(
      "sftp://ann@h/~/nimbus%20vault",
    );
    expect(storeAddress(sftp({ host: "h", user: "ann", path: "backup/nimbus" }))).toBe("sftp://ann@h/~/backup/nimbus");
  });
  it("checks host, port and folder", () => {
    expect(checkSftp({ host: "h", port: "22", user: "ann", path: "/x", password: "" })).toEqual({});
    const e = checkSftp({ host: "", port: "0", user: "", path: "", password: "" });
    expect(Object.keys(e).sort()).toEqual(["sftp-host", "sftp-path", "sftp-port"]);
    expect(e["sftp-port"]).toBe("A port is a number from 1 to 65535.");
    expect(checkSftp({ host: "h", port: "65536", user: "", path: "/x", password: "" })["sftp-port"]).toBeDefined();
    expect(checkSftp({ host: "h", port: "65535", user: "", path: "/x", password: "" })).toEqual({});
    expect(checkSftp({ host: "sftp://h", port: "", user: "", path: "/x", password: "" })["sftp-host"]).toBe(
      "Give only the server's name or IP address, such as nas.local.",
    );
    expect(checkSftp({ host: "h", port: "", user: "", path: "/a/../b", password: "" })["sftp-path"]).toBeDefined();
  });
  it("leaves the password empty to use SSH keys", () => {
    expect(storeCredentials(sftp({ host: "h", path: "/x" })).password).toBeNull();
    expect(storeCredentials(sftp({ host: "h", path: "/x", password: "pw" })).password).toBe("pw");
  });
});

describe("local folders", () => {
  it("are the path as typed", () => {
    expect(storeAddress(local(" /srv/vault "))).toBe("/srv/vault");
    expect(storeAddress(local("~/Vault"))).toBe("~/Vault");
  });
  it("must be absolute", () => {
    expect(checkLocal({ path: "vault" })).toEqual({ "local-path": "Give the full path, starting with / or ~/." });
    expect(checkLocal({ path: "" })["local-path"]).toMatch(/^Give the folder/);
    expect(storeAddress(local("vault"))).toBeNull();
  });
  it("knows absolute paths", () => {
    expect(isAbsolutePath("/a")).toBe(true);
    expect(isAbsolutePath("~/a")).toBe(true);
    expect(isAbsolutePath("C:\\Users")).toBe(true);
    expect(isAbsolutePath("a/b")).toBe(false);
    expect(isAbsolutePath("~a")).toBe(false);
  });
});

describe("encoding", () => {
  it("encodes path segments", () => {
    expect(encodePath("/a b/c%d//e/")).toBe("a%20b/c%25d/e");
    expect(encodePath("")).toBe("");
  });
  it("escapes query values only where needed", () => {
    expect(encodeQueryValue("http://127.0.0.1:3900")).toBe("http://127.0.0.1:3900");
    expect(encodeQueryValue("a b&c=d+e#f%")).toBe("a%20b%26c%3Dd%2Be%23f%25");
  });
});

describe("vault step", () => {
  it("needs equal passwords of score 2 or more to create", () => {
    expect(checkCreateVault("correct horse battery", "correct horse battery", 3)).toEqual({});
    expect(checkCreateVault("abc", "abc", 1)).toEqual({
      "vault-password": "This password is too easy to guess. Make it longer, or add unrelated words.",
    });
    expect(checkCreateVault("abcdefgh12", "abcdefgh13", 2)).toEqual({
      "vault-password2": "The two passwords are not the same.",
    });
    expect(checkCreateVault("", "", null)).toEqual({ "vault-password": "Choose a password for the vault." });
    expect(Object.keys(checkCreateVault("x", "x", null))).toEqual(["vault-password"]);
  });
  it("needs a password to open", () => {
    expect(checkOpenVault("")).toEqual({ "vault-password": "Give the vault's password." });
    expect(checkOpenVault("a")).toEqual({});
  });
});

describe("drive step", () => {
  it("checks names as nimbusd does", () => {
    expect(checkDriveName("Work", [])).toBeNull();
    expect(checkDriveName("my-drive_2.0", [])).toBeNull();
    expect(checkDriveName("a".repeat(64), [])).toBeNull();
    expect(checkDriveName("", [])).toBe("Give the drive a name.");
    expect(checkDriveName("a".repeat(65), [])).toBe("A drive name has at most 64 characters.");
    expect(checkDriveName("my drive", [])).toBe("Use only letters, digits, `-`, `_` and `.` (no spaces).");
    expect(checkDriveName("a/b", [])).toBe("Use only letters, digits, `-`, `_` and `.` (no spaces).");
    expect(checkDriveName(".hidden", [])).toBe("A drive name cannot start with a dot.");
    expect(checkDriveName("Work", ["Work"])).toBe("There is already a drive called Work.");
  });
  it("checks the cache size", () => {
    expect(checkCacheSize("2048")).toBeNull();
    expect(checkCacheSize("64")).toBeNull();
    expect(checkCacheSize("1048576")).toBeNull();
    expect(checkCacheSize("63")).toBe("Give a size from 64 to 1048576 MiB.");
    expect(checkCacheSize("1048577")).toBe("Give a size from 64 to 1048576 MiB.");
    expect(checkCacheSize("1.5")).toBe("Give a whole number of MiB.");
    expect(checkCacheSize("")).toBe("Give a whole number of MiB.");
  });
  it("parses offline folders", () => {
    expect(parseOfflinePaths("")).toEqual({ paths: [], error: null });
    expect(parseOfflinePaths("  Documents \n\n/Photos/2024/\r\nDocuments\n")).toEqual({
      paths: ["Documents", "Photos/2024"],
      error: null,
    });
    expect(parseOfflinePaths("a/../../etc").error).toBe("“a/../../etc” goes outside the drive: remove the .. part.");
    expect(parseOfflinePaths("a//b").error).toBe("“a//b” is not a plain folder path inside the drive.");
  });
  it("checks the whole step", () => {
    const ok = { name: "Work", mount: "/home/ann/Nimbus/Work", cacheSize: "2048", offline: "" };
    expect(checkDrive(ok, [])).toEqual({});
    expect(checkDrive({ ...ok, mount: "~/Nimbus/Work" }, [])).toEqual({});
    expect(Object.keys(checkDrive({ name: "", mount: "Nimbus", cacheSize: "1", offline: ".." }, [])).sort()).toEqual(
      ["cache-size", "drive-name", "mount-point", "offline-paths"],
    );
    expect(checkDrive({ ...ok, mount: "Nimbus" }, [])["mount-point"]).toBe(
      "Give the full path, starting with / or ~/.",
    );
  });
});

describe("helpers", () => {
  it("suggest a free drive name from the store", () => {
    expect(suggestName(s3({ bucket: "photos" }), [])).toBe("photos");
    expect(suggestName(s3({ bucket: "photos", prefix: "laptop/work" }), [])).toBe("work");
    expect(suggestName(local("/srv/My Vault"), ["My-Vault"])).toBe("My-Vault-2");
    expect(suggestName(sftp({ host: "h", path: "~" }), [])).toBe("Nimbus");
    expect(suggestName(webdav({ url: "https://h/dav/Team%20Files" }), [])).toBe("Team-Files");
  });
  it("send errors to the step they concern", () => {
    expect(stepOfError("wrong_password")).toBe(3);
    expect(stepOfError("drive_exists")).toBe(4);
    expect(stepOfError("store_refused")).toBe(2);
    expect(stepOfError("internal")).toBe(4);
  });
});
