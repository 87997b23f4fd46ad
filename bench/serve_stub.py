"""Child of bench/run.py: one HTTP stub through the API (no state dir, so no log file).

Usage: python bench/serve_stub.py   (the profile comes as JSON on the first stdin line)
Prints one JSON line with the stub's URL once it is ready, then serves until stdin closes.
Set against `sandbox up -d`, it shows what the detached supervisor's logging costs; with
BENCH_UVLOOP=1 it runs on uvloop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys


async def main() -> None:
    import sandbox

    loop = asyncio.get_running_loop()
    profile = json.loads(sys.stdin.readline())
    async with sandbox.start(profile) as sb:
        name = next(iter(sb.services))
        print(json.dumps({"url": sb.url(name)}), flush=True)
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    if os.environ.get("BENCH_UVLOOP") == "1":  # the same stub on uvloop's event loop
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
