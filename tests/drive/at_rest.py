#!/usr/bin/env python3
"""Scans a local state folder for plaintext names and content.

    at_rest.py <state-dir> <tree-that-was-written> <mountpoint> <name>...

Fails if any file under <state-dir> contains one of the given names, the
name of any file in the tree, or any 64-byte run taken from the tree's
files (every 4 KiB of each file larger than 64 bytes, at several offsets).
"""
import os
import sys


def main():
    state, tree = sys.argv[1], sys.argv[2]
    needles = set(n.encode() for n in sys.argv[4:])
    runs = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        for n in dirnames + filenames:
            if len(n) >= 12:  # short names (src, lib.rs) occur by chance
                needles.add(n.encode())
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            for off in range(0, max(0, len(data) - 64), 4096):
                run = data[off : off + 64]
                if len(set(run)) > 8:  # skip runs of one byte, padding
                    runs.add(run)
    bad = 0
    scanned = 0
    for dirpath, _, filenames in os.walk(state):
        for n in filenames:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                data = f.read()
            scanned += len(data)
            for nd in needles:
                if nd in data:
                    print(f"PLAINTEXT NAME {nd[:40]!r} in {p}")
                    bad += 1
            # A 64-byte window slides over the file; look each up.
            for i in range(0, max(0, len(data) - 63)):
                if data[i : i + 64] in runs:
                    print(f"PLAINTEXT CONTENT at {p}:{i}")
                    bad += 1
                    break
    print(f"at_rest.py: scanned {scanned} bytes in {state} for {len(needles)} names and {len(runs)} content runs: {bad} found")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
