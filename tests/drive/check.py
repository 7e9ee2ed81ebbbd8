#!/usr/bin/env python3
"""Checks a drive against the crash workload's journal (see workload.py).

    check.py <journal-file>

Exit 0 when every promise the journal holds is kept; otherwise prints each
broken promise and exits 1.
"""
import hashlib
import os
import sys


def main():
    promises = {}
    dirs = set()
    with open(sys.argv[1]) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            kind, path = parts[0], parts[1]
            if kind == "file":
                promises[path] = ("file", parts[2])
            elif kind == "prefix":
                promises[path] = ("prefix", int(parts[2]), parts[3])
            elif kind in ("gone", "unknown"):
                promises.pop(path, None)
                if kind == "gone":
                    promises[path] = ("gone",)
                else:
                    promises.pop(path, None)
            elif kind == "dir":
                dirs.add(path)
    bad = []
    for path, p in promises.items():
        if p[0] == "gone":
            if os.path.lexists(path):
                bad.append(f"{path}: fsynced rename/delete undone")
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            bad.append(f"{path}: {e}")
            continue
        if p[0] == "file":
            if hashlib.sha256(data).hexdigest() != p[1]:
                bad.append(f"{path}: content differs from what fsync acknowledged ({len(data)} bytes)")
        else:
            length, digest = p[1], p[2]
            if len(data) < length or hashlib.sha256(data[:length]).hexdigest() != digest:
                bad.append(f"{path}: first {length} bytes differ from what fsync acknowledged (now {len(data)} bytes)")
    for d in dirs:
        if not os.path.isdir(d):
            bad.append(f"{d}: fsynced folder missing")
    for b in bad:
        print("LOST:", b)
    print(f"check.py: {len(promises)} files and {len(dirs)} folders promised, {len(bad)} broken")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
