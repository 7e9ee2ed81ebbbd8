#!/usr/bin/env python3
"""Random edits through one real mount, and the end check of several
(docs/SYNC.md §6.3).

    workload.py run MOUNT DEVICE SEED SECONDS LOG [--settle CMD...]
        edits MOUNT for SECONDS: new files and rewrites (each fsync'd),
        appends, renames, moves between folders, deletes, new folders,
        folder moves. Every version written is logged as a JSON line
        {"dev", "op", "path", "sha256"}. Every few seconds it runs the
        settle command (`nimbus sync MOUNT`, with a timeout); when that
        succeeds, the newest version of each file it wrote since, still at
        its path, is logged again as {"op": "settled", ...}: that version
        is in the vault, so the end check must find it. A version that was
        overwritten before any commit took it never reached the vault, and
        nothing promises to keep it (SYNC.md §3.7).
    workload.py tree MOUNT
        prints the tree's digest lines (folders, files with size and
        sha256), `.snapshots` left out.
    workload.py check LOG... -- MOUNT...
        every mount shows the same tree, byte for byte, and every settled
        version is in that tree (at any name, conflict copies included) or
        under `.snapshots/`; prints a summary as JSON on the last line.

Operations that meet a name another device just moved or deleted fail with
ENOENT and the like; they are counted as raced, not errors.
"""
import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import sys
import time

CONFLICT = " (conflict "


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk(root):
    """(folders, {relative path: sha256}) of a mount, `.snapshots` left out."""
    dirs, files = [], {}
    for d, subdirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == ".":
            subdirs[:] = [s for s in subdirs if s != ".snapshots"]
        else:
            dirs.append(rel)
        for n in names:
            p = os.path.join(d, n)
            files[os.path.normpath(os.path.join(rel, n))] = sha256_file(p)
    return sorted(dirs), files


def tree_lines(root):
    dirs, files = walk(root)
    out = [f"d {d}" for d in dirs]
    out += [f"f {p} {h}" for p, h in sorted(files.items())]
    return out


class Workload:
    def __init__(self, mount, dev, seed, log, settle):
        self.mount = mount
        self.dev = dev
        self.rng = random.Random(f"{dev}-{seed}")
        self.log = open(log, "a", buffering=1)
        self.settle_cmd = settle
        self.counter = 0
        self.unsettled = {}  # relative path -> (sha256, size) of the newest version written
        self.stats = {"ops": 0, "raced": 0, "writes": 0, "settled": 0, "settle_failed": 0}

    def record(self, op, rel, digest=None, size=None):
        entry = {"t": round(time.time(), 3), "dev": self.dev, "op": op, "path": rel}
        if digest is not None:
            entry["sha256"] = digest
            entry["size"] = size
        self.log.write(json.dumps(entry) + "\n")

    def abs(self, rel):
        return os.path.join(self.mount, rel)

    def listing(self):
        """Folders and files as the mount shows them now."""
        dirs, files = [""], []
        for d, subdirs, names in os.walk(self.mount):
            rel = os.path.relpath(d, self.mount)
            if rel == ".":
                subdirs[:] = [s for s in subdirs if s != ".snapshots"]
                rel = ""
            else:
                dirs.append(rel)
            files += [os.path.join(rel, n) for n in names]
        return dirs, files

    def new_name(self, kind):
        self.counter += 1
        # A few names from a small shared pool, so devices also create the
        # same name at once; the rest are this device's own.
        if self.rng.random() < 0.15:
            return f"{kind}-shared-{self.rng.randrange(6)}"
        return f"{kind}-{self.dev}-{self.counter}"

    def content(self):
        r = self.rng.random()
        size = self.rng.randrange(0, 300) if r < 0.3 else self.rng.randrange(300, 70000) if r < 0.95 else self.rng.randrange(200000, 600000)
        return self.rng.randbytes(size)

    def write(self, rel, data, mode="wb"):
        with open(self.abs(rel), mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(self.abs(rel))
        size = os.path.getsize(self.abs(rel))
        self.unsettled[rel] = (digest, size)
        self.stats["writes"] += 1
        self.record("write", rel, digest, size)

    def op(self):
        dirs, files = self.listing()
        r = self.rng.random()
        if r < 0.25 or not files:
            d = self.rng.choice(dirs)
            self.write(os.path.join(d, self.new_name("f") + ".bin"), self.content())
        elif r < 0.45:
            self.write(self.rng.choice(files), self.content())
        elif r < 0.55:
            self.write(self.rng.choice(files), self.content()[:4000], "ab")
        elif r < 0.65:
            src = self.rng.choice(files)
            dst = os.path.join(os.path.dirname(src), self.new_name("r") + ".bin")
            self.move(src, dst)
        elif r < 0.75:
            src = self.rng.choice(files)
            dst = os.path.join(self.rng.choice(dirs), os.path.basename(src))
            if os.path.normpath(dst) != os.path.normpath(src) and not os.path.exists(self.abs(dst)):
                self.move(src, dst)
        elif r < 0.85:
            rel = self.rng.choice(files)
            os.unlink(self.abs(rel))
            self.unsettled.pop(rel, None)
            self.record("delete", rel)
        elif r < 0.95 or len(dirs) < 2:
            rel = os.path.join(self.rng.choice(dirs), self.new_name("dir"))
            os.mkdir(self.abs(rel))
            self.record("mkdir", rel)
        else:
            # A folder moved into another (never into itself).
            src = self.rng.choice(dirs[1:])
            parent = self.rng.choice([d for d in dirs if d != src and not d.startswith(src + "/")])
            dst = os.path.join(parent, os.path.basename(src))
            if not os.path.exists(self.abs(dst)):
                os.rename(self.abs(src), self.abs(dst))
                self.unsettled = {
                    (dst + p[len(src):] if p.startswith(src + "/") else p): h for p, h in self.unsettled.items()
                }
                self.record("move-folder", f"{src} -> {dst}")

    def move(self, src, dst):
        os.rename(self.abs(src), self.abs(dst))
        if src in self.unsettled:
            self.unsettled[dst] = self.unsettled.pop(src)
        self.record("move", f"{src} -> {dst}")

    def settle(self):
        """Once `nimbus sync` says every change here is in the vault, the
        newest version of each file written since is a committed version."""
        if not self.settle_cmd:
            return
        # What is here now, before the commit: a version another device's
        # merge replaced meanwhile is left out, not guessed.
        here = {}
        for rel, (digest, size) in self.unsettled.items():
            try:
                if sha256_file(self.abs(rel)) == digest:
                    here[rel] = (digest, size)
            except OSError:
                pass
        try:
            ok = subprocess.run(self.settle_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok:
            self.stats["settle_failed"] += 1
            return
        for rel, (digest, size) in here.items():
            self.record("settled", rel, digest, size)
            self.stats["settled"] += 1
        self.unsettled = {p: h for p, h in self.unsettled.items() if here.get(p) != h}

    def run(self, seconds):
        end = time.monotonic() + seconds
        next_settle = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                self.op()
            except OSError:
                self.stats["raced"] += 1
            self.stats["ops"] += 1
            time.sleep(self.rng.uniform(0.02, 0.25))
            if time.monotonic() >= next_settle:
                self.settle()
                next_settle = time.monotonic() + self.rng.uniform(2, 5)
        self.settle()
        self.log.write(json.dumps({"dev": self.dev, "op": "stats", **self.stats}) + "\n")
        print(f"{self.dev}: " + ", ".join(f"{k} {v}" for k, v in self.stats.items()))


def find_in_snapshots(mounts, missing):
    """The (path, sha256, size) of `missing` found under some mount's
    `.snapshots/`: first at the same path (newest snapshot first, hashing
    only a file of the same size: each read comes from the store), then
    anywhere."""
    found = set()
    for m in mounts:
        snaps = os.path.join(m, ".snapshots")
        try:
            names = sorted(os.listdir(snaps), reverse=True)
        except OSError:
            continue

        def at_same_path(version, snaps=snaps, names=names):
            path, digest, size = version
            for s in names:
                p = os.path.join(snaps, s, path)
                try:
                    if os.path.getsize(p) == size and sha256_file(p) == digest:
                        return True
                except OSError:
                    pass
            return False

        # Each read comes from the store: several at once.
        todo = sorted(missing - found)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for version, hit in zip(todo, pool.map(at_same_path, todo)):
                if hit:
                    found.add(version)
        rest = {v[1] for v in missing if v not in found}
        if not rest:
            return found
        for s in names:
            _, files = walk(os.path.join(snaps, s))
            hit = rest & set(files.values())
            for path, digest, size in missing:
                if digest in hit:
                    found.add((path, digest, size))
            rest -= hit
            if not rest:
                return found
    return found


def check(logs, mounts):
    trees = [tree_lines(m) for m in mounts]
    problems = []
    for m, t in zip(mounts[1:], trees[1:]):
        if t != trees[0]:
            a, b = set(trees[0]), set(t)
            problems.append(
                f"{m} differs from {mounts[0]}: only in the first {sorted(a - b)[:10]}, only in {m} {sorted(b - a)[:10]}"
            )
    _, files = walk(mounts[0])
    present = set(files.values())
    settled, written, stats = set(), set(), []
    for log in logs:
        for line in open(log):
            e = json.loads(line)
            if e["op"] == "settled":
                settled.add((e["path"], e["sha256"], e["size"]))
            elif e["op"] == "write":
                written.add(e["sha256"])
            elif e["op"] == "stats":
                stats.append(e)
    missing = {v for v in settled if v[1] not in present}
    in_snapshots = find_in_snapshots(mounts, missing) if missing else set()
    lost = sorted(missing - in_snapshots)
    for path, digest, _ in lost[:20]:
        problems.append(f"a settled version is lost: {path} sha256 {digest}")
    summary = {
        "devices": len(mounts),
        "edits": sum(s["ops"] for s in stats),
        "writes": sum(s["writes"] for s in stats),
        "raced": sum(s["raced"] for s in stats),
        "settled_versions": len(settled),
        "settled_in_tree": len(settled) - len(missing),
        "settled_in_snapshots": len(in_snapshots),
        "lost": len(lost),
        "files": len(files),
        "conflict_copies": sum(1 for p in files if CONFLICT in os.path.basename(p)),
        "written_versions_in_tree": len(written & present),
    }
    for p in problems:
        print("PROBLEM: " + p)
    print(json.dumps(summary))
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 7 and argv[1] == "run":
        settle = argv[argv.index("--settle") + 1:] if "--settle" in argv else []
        w = Workload(argv[2], argv[3], argv[4], argv[6], settle)
        w.run(float(argv[5]))
        return 0
    if len(argv) == 3 and argv[1] == "tree":
        print("\n".join(tree_lines(argv[2])))
        return 0
    if len(argv) >= 5 and argv[1] == "check" and "--" in argv:
        i = argv.index("--")
        return check(argv[2:i], argv[i + 1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
