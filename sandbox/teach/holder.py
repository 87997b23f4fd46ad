"""A tiny foreign program that holds one loopback address:port, for the `port-taken` lab.

Run as `python3 -m sandbox.teach.holder ADDRESS PORT`. It needs nothing but the standard
library and the loopback rule of sandbox.net.addresses, takes only a literal loopback address
(no name lookup, no reverse lookup: it never asks a resolver anything), greets each client
with one line, answers the first line the client sends, and closes. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
import threading

from sandbox.net.addresses import loopback_problem

_READ_TIMEOUT = 2.0  # seconds a client may take to send its line before it is closed


def parse(argv: list[str]) -> tuple[str, int]:
    """ADDRESS and PORT from the command line. Raises ValueError unless ADDRESS is a literal
    loopback address and PORT is 1..65535: this program never listens anywhere else."""
    if len(argv) != 2:
        raise ValueError("usage: python3 -m sandbox.teach.holder ADDRESS PORT")
    address, port_text = argv
    addr = ipaddress.ip_address(address.strip("[]"))
    problem = loopback_problem(addr, address)
    if problem is not None:
        raise ValueError(problem)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is not a port (1..65535)")
    return str(addr), port


def listen(address: str, port: int) -> socket.socket:
    """A listening socket on exactly address:port (SO_REUSEADDR, as most servers set it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=64)


def _answer(conn: socket.socket, where: str) -> None:
    # A client that goes away at once (a readiness probe) is normal, not an error.
    try:
        with conn:
            conn.sendall(f"holder pid {os.getpid()} holds {where}\r\n".encode())
            conn.settimeout(_READ_TIMEOUT)
            line = conn.makefile("rb").readline(1024).strip()
            if line:
                conn.sendall(b"you said: " + line + b"\r\n")
    except OSError:
        pass


def serve(server: socket.socket, where: str) -> None:
    """Accept forever, one short-lived thread per client."""
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_answer, args=(conn, where), daemon=True).start()


def main(argv: list[str]) -> int:
    try:
        address, port = parse(argv)
    except ValueError as exc:
        print(f"holder: {exc}", file=sys.stderr)
        return 2
    # The default SIGTERM action would end the process without closing anything; exiting
    # through SystemExit closes the socket like any well-behaved server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    try:
        server = listen(address, port)
    except OSError as exc:
        print(f"holder: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with server:
        print(f"holder pid {os.getpid()} listening on {where}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            serve(server, where)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
