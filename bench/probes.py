"""`sandbox probe` with 1000 targets, half of them refused: wall time and output size.

500 listening sockets are held here (listen() and never accept: the kernel completes the
handshake from the backlog, which is all a TCP probe needs); the other 500 addresses have
no listener on that port and refuse.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from contextlib import ExitStack

from common import Row, common_free_port, sandbox_cmd, timed_run

TARGETS = 1000
# Far from the addresses the start-up cases plan (127.77.0.1 upwards).
FIRST = ipaddress.IPv4Address("127.77.200.1")


def probe_many(runs: int) -> list[Row]:
    """`sandbox probe` of 500 open and 500 refused targets: seconds and stdout bytes."""
    addresses = [str(FIRST + i) for i in range(TARGETS)]
    port = common_free_port(addresses)
    open_half = addresses[::2]
    targets = [f"{a}:{port}" for a in addresses]
    walls, sizes, json_walls = [], [], []
    with ExitStack() as stack:
        for address in open_half:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((address, port))
            sock.listen(64)
        cmd = [*sandbox_cmd(), "probe", *targets]
        for _ in range(runs):
            took, proc = timed_run(cmd, timeout=120)
            if proc.returncode != 5:  # 5: some targets are not reachable, as intended
                raise RuntimeError(f"sandbox probe exited {proc.returncode}: {proc.stderr[-400:]}")
            walls.append(took)
            sizes.append(float(len(proc.stdout.encode()) + len(proc.stderr.encode())))
            took, proc = timed_run([*cmd, "--json"], timeout=120)
            results = json.loads(proc.stdout)["results"]
            reachable = sum(1 for r in results if r["state"] == "open")
            if len(results) != TARGETS or reachable != len(open_half):
                raise RuntimeError(f"probe --json: {reachable} open of {len(results)}")
            json_walls.append(took)
    where = f"{TARGETS} targets {addresses[0]}..{addresses[-1]}:{port}, every other one listening"
    return [
        Row("probes", f"`sandbox probe`, {TARGETS} targets, half refused", walls, "s", note=where),
        Row("probes_bytes", "… bytes it prints (stdout + stderr)", sizes, "B"),
        Row("probes_json", "… the same with `--json`", json_walls, "s"),
    ]
