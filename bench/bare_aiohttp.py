"""Control: the reference's "bare aiohttp script", measured here on the same machine.

Usage: python bench/bare_aiohttp.py LAUNCHED_WALL PORT ADDRESS [ADDRESS ...]
One aiohttp app, one TCPSite per address, no probing. Prints one JSON line once every
site listens; with BARE_SERVE=1 it then serves until its stdin closes (for the load test).
With BARE_UPSTREAM=URL every request is forwarded there through one aiohttp ClientSession
(the control for a proxy route): the same work a hand-written aiohttp proxy does.
"""

from __future__ import annotations

import time

T_ENTRY = time.time()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


async def main(launched: float, port: int, addresses: list[str]) -> None:
    from common import vmrss_mib

    t0 = time.perf_counter()
    from aiohttp import web

    imported = time.perf_counter() - t0

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    upstream = os.environ.get("BARE_UPSTREAM")
    session: Any = None

    async def forward(request: web.Request) -> web.Response:
        async with session.request(request.method, upstream + request.path_qs) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, body=body)

    t1 = time.perf_counter()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello if upstream is None else forward)
    if upstream is not None:
        from aiohttp import ClientSession

        session = ClientSession()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ports = []
    for address in addresses:
        site = web.TCPSite(runner, address, port)
        await site.start()
        server = site._server  # the only way to learn the port the kernel picked for 0
        assert isinstance(server, asyncio.Server)
        ports.append(server.sockets[0].getsockname()[1])
    started = time.perf_counter() - t1
    ready_wall = time.time()
    result = {
        "interpreter_s": T_ENTRY - launched,
        "import_s": imported,
        "sites_s": started,
        "launch_to_ready_s": ready_wall - launched,
        "rss_mib": vmrss_mib(),
        "ports": ports,
    }
    print(json.dumps(result), flush=True)
    try:
        if os.environ.get("BARE_SERVE") == "1":
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()
        if session is not None:
            await session.close()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
