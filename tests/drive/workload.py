#!/usr/bin/env python3
"""A mixed file workload for the crash test; records what fsync acknowledged.

    workload.py <dir-in-drive> <journal-file> <seed>

Runs until killed or until the drive fails under it. Each step is one of:
a new file written and fsynced, an append to a log file then fsync, a
rename of a finished file, a file overwritten in place (not fsynced: its
content after a crash may be old or new), a folder made, or a file deleted.
After every fsync returns, the journal (outside the drive, fsynced itself)
gets one line saying what must survive a crash from then on:

    file <path> <sha256>          the file exists with exactly this content
    prefix <path> <length> <sha256>  the file starts with these bytes
    gone <path>                   (a rename or delete that was fsynced)
    dir <path>                    the folder exists

A rename or delete can reach the drive's database (which commits every
50 ms) before its fsync returns, so the journal says what is about to
happen first, and a crash in between is judged by what may be seen:

    moving <old> <new> <sha256>   exactly one of the two names exists, with this content
    removing <path> <sha256>      the file is gone, or still has this content
    unknown <path>                no promise (overwritten in place, not fsynced)

The checker (check.py) replays the journal after the remount.
"""
import hashlib
import os
import random
import sys


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main():
    root, journal_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    journal = open(journal_path, "a", buffering=1)

    def note(line):
        journal.write(line + "\n")
        journal.flush()
        os.fsync(journal.fileno())

    log_path = os.path.join(root, "append.log")
    log_hash = hashlib.sha256()
    log_len = 0
    if os.path.exists(log_path):
        with open(log_path, "rb") as f:
            data = f.read()
        log_hash.update(data)
        log_len = len(data)
    finished = []
    n = 0
    while True:
        n += 1
        op = rnd.random()
        if op < 0.45:
            name = os.path.join(root, f"f-{seed}-{n}")
            size = rnd.choice([0, 1, 100, 4095, 4096, 5000, 70000, 300000, 1500000])
            data = rnd.randbytes(size)
            with open(name, "wb") as f:
                # Several writes, as programs do.
                for i in range(0, len(data), 65536):
                    f.write(data[i : i + 65536])
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(root)
            note(f"file {name} {hashlib.sha256(data).hexdigest()}")
            finished.append((name, hashlib.sha256(data).hexdigest()))
        elif op < 0.65:
            data = rnd.randbytes(rnd.choice([10, 200, 5000]))
            with open(log_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            log_hash.update(data)
            log_len += len(data)
            note(f"prefix {log_path} {log_len} {log_hash.hexdigest()}")
        elif op < 0.75 and finished:
            old, digest = finished.pop(rnd.randrange(len(finished)))
            new = old + "-renamed"
            note(f"moving {old} {new} {digest}")
            os.rename(old, new)
            fsync_dir(root)
            note(f"gone {old}")
            note(f"file {new} {digest}")
            finished.append((new, digest))
        elif op < 0.85 and finished:
            # Overwritten in place without fsync: no promise either way, so
            # the file leaves the list of what must survive.
            name, _ = finished.pop(rnd.randrange(len(finished)))
            note(f"unknown {name}")
            with open(name, "r+b") as f:
                f.seek(rnd.randrange(0, 4096))
                f.write(rnd.randbytes(rnd.choice([1, 4096, 10000])))
        elif op < 0.92 and finished:
            name, digest = finished.pop(rnd.randrange(len(finished)))
            note(f"removing {name} {digest}")
            os.unlink(name)
            fsync_dir(root)
            note(f"gone {name}")
        else:
            d = os.path.join(root, f"d-{seed}-{n}")
            os.mkdir(d)
            fsync_dir(root)
            note(f"dir {d}")


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        # The drive went away under us (the point of the test).
        print(f"workload stopped: {e}", file=sys.stderr)
        sys.exit(0)
