#!/usr/bin/env python3
"""Talks to nimbusd's socket directly, byte for byte, for what the nimbus
CLI will never send: malformed, oversized and wrong-version requests, a
connection from another user, and many status requests in a row (latency).

    api.py SOCKET bad-requests      every bad request gets its error code; the service stays up
    api.py SOCKET other-user        run as another user: must be refused
    api.py SOCKET latency N         p50 and p99 of N status requests, in ms
    api.py SOCKET call JSON         one request (the `req` object); prints the answer
    api.py SOCKET events SECONDS    subscribes; prints one event per line for that long
"""
import json
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s, s.makefile("rb")


def ask(s, f, line):
    s.sendall(line + b"\n")
    answer = f.readline()
    if not answer:
        return None
    return json.loads(answer)


def code(answer):
    return answer.get("body", {}).get("error", {}).get("code") if answer else None


def bad_requests(path):
    s, f = connect(path)
    cases = [
        (b"this is not json", "bad_request"),
        (b"[1, 2, 3]", "bad_request"),
        (b'{"id": 1, "req": {"op": "status"}}', "bad_request"),
        (b'{"v": 99, "id": 2, "req": {"op": "status"}}', "unsupported_version"),
        (b'{"v": "one", "id": 3, "req": {"op": "status"}}', "unsupported_version"),
        (b'{"v": 1, "id": 4, "req": {"op": "format_the_disk"}}', "bad_request"),
        (b'{"v": 1, "id": 5, "req": {"op": "status", "surprise": 1}}', "bad_request"),
        (b'{"v": 1, "id": 6, "req": {"op": "lock", "drive": "no-such-drive"}}', "no_such_drive"),
        (b'{"v": 1, "id": 7, "req": {"op": "restore", "drive": "x", "path": "../../etc/passwd", "at": "latest"}}', "no_such_drive"),
        (b"\xff\xfe\x00garbage", "bad_request"),
    ]
    for line, want in cases:
        a = ask(s, f, line)
        got = code(a)
        assert got == want, f"{line[:60]!r}: wanted {want}, got {a}"
        print(f"  refused as {got:<20} {line[:60]!r}")
    # The answer carries the request's id, even for a wrong version.
    a = ask(s, f, b'{"v": 99, "id": 4242}')
    assert a["id"] == 4242, a
    # The same connection still works.
    a = ask(s, f, b'{"v": 1, "id": 8, "req": {"op": "status"}}')
    assert "ok" in a["body"], a
    # Oversized: 2 MiB without a newline. Refused, connection closed.
    big = b'{"v": 1, "id": 9, "req": {"op": "status", "drive": "' + b"x" * (2 << 20) + b'"}}'
    try:
        s.sendall(big + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    a = f.readline()
    assert a and code(json.loads(a)) == "too_large", a[:200]
    print("  refused as too_large            (a 2 MiB line; connection closed)")
    s.close()
    # A client that connects and vanishes mid-line, and one that sends nothing.
    for junk in (b'{"v": 1, "id": 1, "req": {"op": "sta', b""):
        s, f = connect(path)
        s.sendall(junk)
        s.close()
    # The service is still up.
    s, f = connect(path)
    a = ask(s, f, b'{"v": 1, "id": 10, "req": {"op": "status"}}')
    assert "ok" in a["body"], a
    print("  the service still answers")


def other_user(path):
    try:
        s, f = connect(path)
    except PermissionError as e:
        print(f"refused by the file system: {e}")
        return
    a = f.readline()
    if not a:
        # Closed without a word is a refusal too, but the service says why.
        print("refused: connection closed")
        sys.exit(1)
    got = code(json.loads(a))
    assert got == "not_permitted", a
    # And it answers nothing else on that connection.
    try:
        s.sendall(b'{"v": 1, "id": 1, "req": {"op": "status"}}\n')
        rest = f.readline()
    except (BrokenPipeError, ConnectionResetError):
        rest = b""
    assert not rest, rest
    print(f"refused by the service: {got}")


def latency(path, n):
    s, f = connect(path)
    times = []
    for i in range(n):
        t = time.perf_counter()
        a = ask(s, f, b'{"v": 1, "id": %d, "req": {"op": "status"}}' % (i + 1))
        times.append((time.perf_counter() - t) * 1000)
        assert "ok" in a["body"], a
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"status requests: {n}, p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {times[-1]:.2f} ms")


def events(path, seconds):
    s, f = connect(path)
    s.settimeout(seconds)
    first = ask(s, f, b'{"v": 1, "id": 1, "req": {"op": "subscribe"}}')
    assert first["body"]["ok"]["kind"] == "subscribed", first
    end = time.time() + seconds
    while time.time() < end:
        s.settimeout(max(0.1, end - time.time()))
        try:
            line = f.readline()
        except (socket.timeout, TimeoutError, OSError):
            break
        if not line:
            break
        print(json.dumps(json.loads(line)["body"]["event"]), flush=True)


def call(path, req):
    s, f = connect(path)
    a = ask(s, f, json.dumps({"v": 1, "id": 1, "req": json.loads(req)}).encode())
    print(json.dumps(a))


if __name__ == "__main__":
    path, what = sys.argv[1], sys.argv[2]
    if what == "bad-requests":
        bad_requests(path)
    elif what == "other-user":
        other_user(path)
    elif what == "latency":
        latency(path, int(sys.argv[3]))
    elif what == "events":
        events(path, float(sys.argv[3]))
    elif what == "call":
        call(path, sys.argv[3])
    else:
        sys.exit(__doc__)
