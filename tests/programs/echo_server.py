"""A tiny HTTP server for command-service tests: `echo_server.py ADDRESS PORT [options]`.

Binds ADDRESS:PORT (literal loopback, never a name), prints `ready on ADDRESS:PORT` and
answers: `/env` with its SANDBOX_* variables, pid, process group, cwd and child pids as
JSON; `/crash` by exiting with code 3; anything else with `ok`. Options: `--say LINE`
prints lines first, `--exit CODE` then exits instead of serving, `--fail-first N
--counter FILE` exits with 1 on the first N starts, `--ignore-term` survives SIGTERM
(printing that it did), `--slow S` waits S seconds before each answer. Standard library
only; it never looks a name up (unlike `python -m http.server`, which reverse-resolves its
address).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM (saying so)")
    parser.add_argument("--exit", type=int, default=None, help="print --say, exit with this")
    parser.add_argument("--say", action="append", default=[], help="a line to print first")
    parser.add_argument(
        "--fail-first",
        type=int,
        default=0,
        help="exit with code 1 on the first N starts, counted in the file --counter",
    )
    parser.add_argument("--counter", type=Path, default=None)
    parser.add_argument("--slow", type=float, default=0.0, help="seconds before each answer")
    return parser.parse_args(argv)


def _info() -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k.startswith("SANDBOX_")}
    children = [int(pid) for pid in _children(os.getpid())]
    return {
        "env": env,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "cwd": os.getcwd(),
        "children": children,
        "extra": os.environ.get("EXTRA", ""),
    }


def _children(pid: int) -> list[str]:
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend((task / "children").read_text().split())
    return found


SLOW = [0.0]  # seconds before each answer (--slow)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    parts = head.split(b" ", 2)
    path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
    crash = path == "/crash"
    body = (json.dumps(_info()) if path == "/env" else "ok\n").encode()
    if SLOW[0]:
        await asyncio.sleep(SLOW[0])  # the endpoint is slow on purpose (--slow)
    writer.write(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        await writer.drain()
    finally:
        writer.close()
    print(f"GET {path}", flush=True)
    if crash:
        print("crashing on request", flush=True)
        os._exit(3)


async def _serve(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(_handle, args.address, args.port)
    async with server:
        bound = server.sockets[0].getsockname()
        print(f"ready on {bound[0]}:{bound[1]}", flush=True)
        await server.serve_forever()


def _ignore(signum: int, frame: object) -> None:
    print("got SIGTERM, ignoring it", flush=True)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    for line in args.say:
        print(line, flush=True)
    if args.exit is not None:
        return int(args.exit)
    if args.fail_first and args.counter is not None:
        starts = len(args.counter.read_text()) if args.counter.exists() else 0
        args.counter.write_text("x" * (starts + 1))
        if starts < args.fail_first:
            print(f"failing on purpose (start {starts + 1})", flush=True)
            return 1
    SLOW[0] = args.slow
    if args.ignore_term:
        signal.signal(signal.SIGTERM, _ignore)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
