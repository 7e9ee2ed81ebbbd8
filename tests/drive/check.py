#!/usr/bin/env python3
"""Checks a drive against the crash workload's journal (see workload.py).

    check.py <journal-file>

Exit 0 when every promise the journal holds is kept; otherwise prints each
broken promise and exits 1.
"""
import hashlib
import os
import sys


def read(path):
    """The file's content, or None if no file has that name."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def sha(data):
    return hashlib.sha256(data).hexdigest()


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
            elif kind == "gone":
                promises[path] = ("gone",)
            elif kind == "unknown":
                promises.pop(path, None)
            elif kind == "moving":
                promises[path] = ("moving", parts[2], parts[3])
            elif kind == "removing":
                promises[path] = ("removing", parts[2])
            elif kind == "dir":
                dirs.add(path)
            else:
                sys.exit(f"check.py: unknown journal line: {line!r}")
    bad = []
    for path, p in promises.items():
        if p[0] == "gone":
            if os.path.lexists(path):
                bad.append(f"{path}: fsynced rename/delete undone")
            continue
        try:
            data = read(path)
        except OSError as e:
            bad.append(f"{path}: {e}")
            continue
        if p[0] == "moving":
            # Cut off by the crash: old or new name, never both or neither.
            new, digest = p[1], p[2]
            try:
                moved = read(new)
            except OSError as e:
                bad.append(f"{new}: {e}")
                continue
            if (data is None) == (moved is None):
                which = "neither name exists" if data is None else "both names exist"
                bad.append(f"{path}: was being renamed to {new} when the drive stopped, and {which}")
            elif sha(data if moved is None else moved) != digest:
                bad.append(f"{path}: content changed while it was being renamed to {new}")
            continue
        if p[0] == "removing":
            if data is not None and sha(data) != p[1]:
                bad.append(f"{path}: content changed while it was being deleted")
            continue
        if data is None:
            bad.append(f"{path}: missing")
        elif p[0] == "file":
            if sha(data) != p[1]:
                bad.append(f"{path}: content differs from what fsync acknowledged ({len(data)} bytes)")
        else:
            length, digest = p[1], p[2]
            if len(data) < length or sha(data[:length]) != digest:
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
