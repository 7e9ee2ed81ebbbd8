#!/usr/bin/env python3
"""Writes, overwrites and deletes through one real mount, keeping a
manifest of every version written; and the end checks of the prune test
(tests/prune/run.sh, docs/PRUNE.md §6).

    writer.py run MOUNT DEVICE SEED SECONDS MANIFEST [--settle CMD...]
        for SECONDS, in MOUNT/DEVICE/ only (so two devices never meet on
        one name): new files, overwrites (each fsync'd, random bytes, 1 KB
        to 300 KB) and deletes. Each version is appended to MANIFEST as
        {"path", "sha256", "size"} before it is written. Every ~2 s, and at
        the end, it runs the settle command (`nimbus sync MOUNT`); when
        that succeeds, {"settled": {path: sha256}} records what the folder
        held then (earlier runs' files included). The last settle must succeed.
    writer.py snapshot DIR MANIFEST...
        every file under DIR (a snapshot got with `nimbus get --at`) is
        byte for byte a version the manifests name for its path; prints
        the count.
    writer.py tree MOUNT MANIFEST...
        the mount (`.snapshots` left out) holds exactly the files of each
        manifest's last settled state, byte for byte.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import time


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def files_under(root):
    """{relative path: sha256} of every file under root, `.snapshots` left out."""
    out = {}
    for d, subdirs, names in os.walk(root):
        if os.path.samefile(d, root):
            subdirs[:] = [s for s in subdirs if s != ".snapshots"]
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = sha256_file(p)
    return out


class Writer:
    def __init__(self, mount, dev, seed, manifest, settle):
        self.mount, self.dev, self.settle_cmd = mount, dev, settle
        self.rng = random.Random(f"{seed}-{dev}")
        self.log = open(manifest, "a", buffering=1)
        self.written = 0
        os.makedirs(os.path.join(mount, dev), exist_ok=True)
        # What earlier runs left, so each settled state is the whole folder.
        self.files = {os.path.join(dev, p): h for p, h in files_under(os.path.join(mount, dev)).items()}

    def write(self, rel):
        size = self.rng.choice([1024, 8192, 40_000, 120_000, 300_000])
        data = self.rng.randbytes(self.rng.randint(size // 2, size))
        digest = hashlib.sha256(data).hexdigest()
        self.log.write(json.dumps({"path": rel, "sha256": digest, "size": len(data)}) + "\n")
        with open(os.path.join(self.mount, rel), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.files[rel] = digest
        self.written += len(data)

    def op(self):
        names = sorted(self.files)
        r = self.rng.random()
        if len(names) < 4 or (r < 0.25 and len(names) < 16):
            self.write(f"{self.dev}/f{self.rng.randrange(10**6):06d}.bin")
        elif r < 0.85:
            self.write(self.rng.choice(names))
        else:
            rel = self.rng.choice(names)
            os.unlink(os.path.join(self.mount, rel))
            del self.files[rel]

    def settle(self):
        if self.settle_cmd and subprocess.run(self.settle_cmd, stdout=subprocess.DEVNULL).returncode != 0:
            return False
        self.log.write(json.dumps({"settled": dict(self.files)}) + "\n")
        return True

    def run(self, seconds):
        end = time.monotonic() + seconds
        last = time.monotonic()
        while time.monotonic() < end:
            self.op()
            time.sleep(self.rng.uniform(0.05, 0.4))
            if time.monotonic() - last > 2:
                self.settle()
                last = time.monotonic()
        for _ in range(5):
            if self.settle():
                print(f"{self.dev}: {self.written} bytes written, {len(self.files)} files")
                return 0
            time.sleep(2)
        print(f"{self.dev}: the last settle failed five times", file=sys.stderr)
        return 1


def read_manifests(paths):
    versions, last = {}, {}
    for p in paths:
        settled = {}
        with open(p) as f:
            for line in f:
                e = json.loads(line)
                if "settled" in e:
                    settled = e["settled"]
                else:
                    versions.setdefault(e["path"], set()).add(e["sha256"])
        last.update(settled)
    return versions, last


def check_snapshot(root, manifests):
    versions, _ = read_manifests(manifests)
    have = files_under(root)
    bad = [p for p, h in have.items() if h not in versions.get(p, ())]
    for p in bad:
        print(f"not a version that was written: {p}", file=sys.stderr)
    print(len(have))
    return 1 if bad else 0


def check_tree(mount, manifests):
    _, last = read_manifests(manifests)
    have = files_under(mount)
    bad = sorted(set(have) ^ set(last)) + sorted(p for p in set(have) & set(last) if have[p] != last[p])
    for p in bad:
        print(f"differs from the last confirmed write: {p} (mount {have.get(p, 'absent')[:12]}, "
              f"written {last.get(p, 'absent')[:12]})", file=sys.stderr)
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 7 and argv[1] == "run":
        settle = argv[argv.index("--settle") + 1:] if "--settle" in argv else []
        return Writer(argv[2], argv[3], argv[4], argv[6], settle).run(float(argv[5]))
    if len(argv) >= 4 and argv[1] == "snapshot":
        return check_snapshot(argv[2], argv[3:])
    if len(argv) >= 4 and argv[1] == "tree":
        return check_tree(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
