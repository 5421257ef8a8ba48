"""Carry TCP connections across network namespaces through a unix socket (filesystem sockets are shared by every
network namespace of the machine), with no address but loopback involved.

Two ends, run as two processes:

    # on the host: 127.0.0.1:PORT -> the socket file
    python unix_bridge.py tcp-to-unix --listen 127.0.0.1:28265 --unix /tmp/x/ray.sock
    # inside the namespace (nsenter --net=/run/netns/NAME ...): the socket file -> 127.0.0.1:8265 there
    python unix_bridge.py unix-to-tcp --unix /tmp/x/ray.sock --connect 127.0.0.1:8265

The host end accepts connections before the inner end exists (or while it restarts): each connection retries to
reach the socket for ``--wait`` seconds, then is closed. The inner end does the same for its TCP target, so the
bridge can be started before the service listens. Bytes are copied both ways until each side has closed, and
half-closes are passed on (an HTTP client that shuts down its sending side still gets its answer).

Standard library only (socat is not installed on these machines); stopped by its pid (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

BUFFER = 256 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(BUFFER)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _connect_with_retry(opener, wait: float):
    """Open the far side, retrying while it does not exist yet (``ENOENT``, refused) for ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.05
    while True:
        try:
            return await opener()
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


def _handler(opener, wait: float):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await _connect_with_retry(opener, wait)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, far_writer), _pipe(far_reader, client_writer))
        for writer in (client_writer, far_writer):
            writer.close()

    return handle


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"unix_bridge: {text!r}: only loopback addresses are allowed")
    return host, int(port)


async def _main(args: argparse.Namespace) -> None:
    if args.mode == "tcp-to-unix":
        host, port = _host_port(args.listen)
        server = await asyncio.start_server(
            _handler(lambda: asyncio.open_unix_connection(args.unix), args.wait), host, port, reuse_address=True)
    else:
        host, port = _host_port(args.connect)
        # A socket file left by an earlier run would make bind fail; only ever ours (the path is the caller's).
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        server = await asyncio.start_unix_server(
            _handler(lambda: asyncio.open_connection(host, port), args.wait), args.unix)
        os.chmod(args.unix, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"unix_bridge {args.mode} ready", flush=True)
        await stop.wait()
    if args.mode == "unix-to-tcp" and os.path.exists(args.unix):
        os.unlink(args.unix)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("mode", choices=["tcp-to-unix", "unix-to-tcp"])
    parser.add_argument("--unix", required=True, help="the socket file both ends share")
    parser.add_argument("--listen", help="tcp-to-unix: the loopback HOST:PORT to listen on")
    parser.add_argument("--connect", help="unix-to-tcp: the loopback HOST:PORT to forward to")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds a connection waits for the far side")
    args = parser.parse_args(argv)
    if (args.mode == "tcp-to-unix") != bool(args.listen) or (args.mode == "unix-to-tcp") != bool(args.connect):
        parser.error("tcp-to-unix takes --listen, unix-to-tcp takes --connect")
    asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
