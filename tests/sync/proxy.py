#!/usr/bin/env python3
"""A small TCP proxy in front of a store, one per device, that can cut that
device off and heal it again (docs/SYNC.md §6.3): a partition without
network namespaces.

    proxy.py serve TARGET_PORT CONTROL_SOCKET PORT_FILE
        listens on a free port of 127.0.0.1 (written to PORT_FILE once it
        listens) and forwards every connection to 127.0.0.1:TARGET_PORT.
    proxy.py ctl CONTROL_SOCKET cut|heal|status
        cut:  every open connection is reset, and every new one is accepted
              and reset at once, so each request of that device fails;
        heal: connections are forwarded again;
        status: "cut" or "open", connections served, bytes each way.

The control socket is a Unix socket; a command is one line, the answer one
line.
"""
import asyncio
import os
import socket
import struct
import sys


class Proxy:
    def __init__(self, target_port):
        self.target_port = target_port
        self.cut = False
        self.live = set()  # transports of the open connections, both sides
        self.served = 0
        self.refused = 0
        self.up = 0  # bytes client -> store
        self.down = 0  # bytes store -> client

    @staticmethod
    def reset(writer):
        """Closes with a TCP reset, as a dropped link looks to the client."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    async def pump(self, reader, writer, upward):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if upward:
                    self.up += len(data)
                else:
                    self.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                if writer.can_write_eof():
                    writer.write_eof()
            except (OSError, RuntimeError):
                pass

    async def client(self, c_reader, c_writer):
        if self.cut:
            self.refused += 1
            self.reset(c_writer)
            return
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self.reset(c_writer)
            return
        self.served += 1
        pair = (c_writer, s_writer)
        self.live.add(pair)
        try:
            await asyncio.gather(
                self.pump(c_reader, s_writer, True),
                self.pump(s_reader, c_writer, False),
            )
        finally:
            self.live.discard(pair)
            for w in pair:
                w.transport.abort()

    def command(self, line):
        if line == "cut":
            self.cut = True
            for c_writer, s_writer in list(self.live):
                self.reset(c_writer)
                s_writer.transport.abort()
            self.live.clear()
            return "ok cut"
        if line == "heal":
            self.cut = False
            return "ok open"
        if line == "status":
            state = "cut" if self.cut else "open"
            return f"{state} served={self.served} refused={self.refused} up={self.up} down={self.down}"
        return f"unknown command {line!r}"

    async def control(self, reader, writer):
        try:
            line = (await reader.readline()).decode().strip()
            writer.write((self.command(line) + "\n").encode())
            await writer.drain()
        finally:
            writer.close()


async def serve(target_port, control_path, port_file):
    proxy = Proxy(target_port)
    server = await asyncio.start_server(proxy.client, "127.0.0.1", 0)
    if os.path.exists(control_path):
        os.unlink(control_path)
    ctl = await asyncio.start_unix_server(proxy.control, control_path)
    port = server.sockets[0].getsockname()[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, port_file)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


def ctl(control_path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(control_path)
    s.sendall((cmd + "\n").encode())
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    text = answer.decode().strip()
    print(text)
    return 0 if not text.startswith("unknown") else 1


def main(argv):
    if len(argv) == 5 and argv[1] == "serve":
        asyncio.run(serve(int(argv[2]), argv[3], argv[4]))
        return 0
    if len(argv) == 4 and argv[1] == "ctl":
        return ctl(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
