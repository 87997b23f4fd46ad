"""Child of bench/run.py: time `sandbox.start(profile)` for 50 stubs in a fresh interpreter.

Usage: python bench/child_start.py LAUNCHED_WALL PORT COUNT WARM_RUNS
Prints one JSON line: launch->ready, the imports, the cold start(), warm start()s, stops, RSS.
"""

from __future__ import annotations

import time

T_ENTRY = time.time()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


async def _answers(address: str, port: int) -> bool:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readline()
        return head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
        await writer.wait_closed()


async def main(launched: float, port: int, count: int, warm_runs: int) -> dict[str, object]:
    from common import stubs_profile, vmrss_mib

    t0 = time.perf_counter()
    import sandbox
    from sandbox.api import load
    from sandbox.runtime.sandbox import Sandbox

    imported = time.perf_counter() - t0
    profile = stubs_profile("bench50api", count, port)

    t1 = time.perf_counter()
    async with sandbox.start(profile) as sb:
        cold = time.perf_counter() - t1
        ready_wall = time.time()
        rss = vmrss_mib()
        addresses = [sb.address(name) for name in sb.services]
        # Independent of the product's own probes: every stub answers GET / with 200.
        answered = await asyncio.gather(*(_answers(a, port) for a in addresses))
        t2 = time.perf_counter()
    stop_first = time.perf_counter() - t2

    t3 = time.perf_counter()
    loaded = load(profile)
    load_warm = time.perf_counter() - t3

    warm: list[float] = []
    stops: list[float] = []
    for _ in range(warm_runs):
        t4 = time.perf_counter()
        async with sandbox.start(profile):
            warm.append(time.perf_counter() - t4)
            t5 = time.perf_counter()
        stops.append(time.perf_counter() - t5)
    # The same, but with the conflict check's socket table stubbed out: what reading the
    # machine's table (psutil.net_connections) costs each start.
    no_table: list[float] = []
    for _ in range(warm_runs):
        t6 = time.perf_counter()
        async with Sandbox(loaded, table_reader=list):
            no_table.append(time.perf_counter() - t6)
    return {
        "interpreter_s": T_ENTRY - launched,
        "import_s": imported,
        "cold_start_s": cold,
        "launch_to_ready_s": ready_wall - launched,
        "warm_start_s": warm,
        "load_warm_s": load_warm,
        "stop_s": [stop_first, *stops],
        "no_table_s": no_table,
        "rss_mib": rss,
        "answered": sum(answered),
        "count": count,
        "port": port,
    }


if __name__ == "__main__":
    launched_at, port_, count_, warm_ = sys.argv[1:5]
    result = asyncio.run(main(float(launched_at), int(port_), int(count_), int(warm_)))
    print(json.dumps(result))
