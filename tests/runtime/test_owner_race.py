"""A program's listener handed to a child it forks while readiness checks the owner: still its
own (nginx's master forks its worker just as the restarted nginx first answers)."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.net.listeners import SocketTable
from sandbox.net.table import read_table
from tests.runtime.conftest import StartSandbox

# Listens; on SIGUSR1 forks a child that keeps the listener, and closes its own copy: from
# then on the table names only the child, which did not exist a moment before.
HANDS_OVER = """
import os, signal, socket, sys
def hand_over(*_):
    if os.fork() == 0:
        while True:
            signal.pause()
    sock.close()
signal.signal(signal.SIGUSR1, hand_over)
with open(sys.argv[3] + ".part", "w") as out:
    out.write(str(os.getpid()))
os.rename(sys.argv[3] + ".part", sys.argv[3])  # before it answers: the check finds it
sock = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    signal.pause()
"""


async def test_a_listener_handed_to_a_child_forked_during_the_owner_check_is_the_programs(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    pidfile = tmp_path / "pid"
    handed: list[int] = []

    def table_forking_first() -> SocketTable:
        """The real table, read just after the program forked its child (once it runs)."""
        if handed or not pidfile.exists():
            return read_table()
        parent = int(pidfile.read_text())
        os.kill(parent, signal.SIGUSR1)
        handed.append(parent)
        deadline = time.monotonic() + 10.0
        while True:
            table = read_table()
            holders = {e.owner.pid for e in table if str(e.address) == address and e.owner}
            if holders and parent not in holders:
                return table
            assert time.monotonic() < deadline, f"the child never took the listener: {holders}"
            time.sleep(0.01)  # a synchronous reader cannot await; this polls with a deadline

    python, code, where = (shlex.quote(x) for x in (sys.executable, HANDS_OVER, str(pidfile)))
    run = f"{python} -c {code} {{address}} {{port}} {where}"
    profile = {"name": "handover", "services": {"app": {"kind": "command", "address": address,
                                                        "port": "auto", "run": run}}}  # fmt: skip
    sb = await start_sandbox(profile, table_reader=table_forking_first)
    assert handed, "the owner check should have read the table after the program ran"
    ready = sb.services["app"].ready
    assert ready is not None
    assert ready.ok, ready
