#!/usr/bin/env python3
"""Renames a new file over one name while readers open and read that name.

A rename is atomic for readers: each open must find the old file or the
new one, and each read must be one whole version, never an error (ENOENT,
ESTALE, EIO) nor a mix. Exits 1 with a summary if any reader saw one.

    python3 rename_readers.py FOLDER [RENAMES] [READERS]
"""

import multiprocessing as mp
import os
import sys


def version(i):
    """Version i: a first line naming it, then 8 to 136 KiB of bytes that
    depend on i, so a read of a mix of two versions cannot pass."""
    size = 8192 + (i * 7919) % (128 << 10)
    line = b"version %d\n" % i
    body = (b"%08d" % i) * (size // 8)
    return line + body


def check(data):
    """The version data is, or None when it is no whole version."""
    line, _, _ = data.partition(b"\n")
    if not line.startswith(b"version "):
        return None
    try:
        i = int(line[8:])
    except ValueError:
        return None
    return i if data == version(i) else None


def reader(path, stop, out):
    reads = 0
    errors = {}
    torn = 0
    while not stop.is_set():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            name = os.strerror(e.errno) if e.errno else str(e)
            errors[name] = errors.get(name, 0) + 1
            continue
        if check(data) is None:
            torn += 1
        reads += 1
    out.put((reads, errors, torn))


def main():
    folder = sys.argv[1]
    renames = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    readers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    path = os.path.join(folder, "target")
    tmp = os.path.join(folder, "target.new")
    with open(path, "wb") as f:
        f.write(version(0))
    stop = mp.Event()
    out = mp.Queue()
    procs = [mp.Process(target=reader, args=(path, stop, out)) for _ in range(readers)]
    for p in procs:
        p.start()
    for i in range(1, renames + 1):
        with open(tmp, "wb") as f:
            f.write(version(i))
        os.rename(tmp, path)
    stop.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    reads = sum(r[0] for r in results)
    torn = sum(r[2] for r in results)
    errors = {}
    for r in results:
        for k, v in r[1].items():
            errors[k] = errors.get(k, 0) + v
    with open(path, "rb") as f:
        last = check(f.read())
    print(f"{renames} renames, {readers} readers: {reads} whole reads, "
          f"{torn} torn, errors {errors or 'none'}, last version {last}")
    if errors or torn or last != renames or reads < readers:
        sys.exit(1)


if __name__ == "__main__":
    main()
