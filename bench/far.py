"""The 1st and the 300th of 300 stubs under load: does a stub slow down when many are up?

The same 300-stub profile runs under `sandbox up -d`, and the bare aiohttp control serves
the same 300 addresses; the 1st and the 300th of each are loaded in turn, round by round.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack

from common import BENCH_DIR, Row, common_free_port, planned_addresses, stubs_profile
from load import _detached, _serving
from loadgen import LoadResult, run_load

STUBS = 300


def far_stub_load(duration: float, runs: int, tool: str) -> list[Row]:
    """req/s of stub 1 and stub 300 of 300, ours and the control's; and 300th / 1st."""
    profile = stubs_profile("far300", STUBS, 1)
    addresses = planned_addresses(profile)
    port = common_free_port(addresses)
    profile = stubs_profile("far300", STUBS, port)
    with ExitStack() as stack:
        stack.enter_context(_detached(profile))
        # The control serves the same addresses on another common port.
        bare_port = common_free_port(addresses)
        bare_cmd = [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), repr(time.time())]
        stack.enter_context(_serving([*bare_cmd, str(bare_port), *addresses], BARE_SERVE="1"))
        urls = {
            "far_first": f"http://{addresses[0]}:{port}/",
            "far_last": f"http://{addresses[-1]}:{port}/",
            "far_bare_first": f"http://{addresses[0]}:{bare_port}/",
            "far_bare_last": f"http://{addresses[-1]}:{bare_port}/",
        }
        results: dict[str, list[LoadResult]] = {key: [] for key in urls}
        for url in urls.values():
            run_load(url, duration=1.0, tool=tool)  # warm-up, not recorded
        for _ in range(runs):
            for key, url in urls.items():
                result = run_load(url, duration=duration, tool=tool)
                if result.non_2xx or result.errors:
                    raise RuntimeError(f"{url}: {result.non_2xx} non-2xx, {result.errors} errors")
                results[key].append(result)
    used = results["far_first"][0].tool

    def rps(key: str) -> list[float]:
        return [r.rps for r in results[key]]

    def share(last: str, first: str) -> list[float]:
        return [b / a for a, b in zip(rps(first), rps(last), strict=True)]

    return [
        Row("far_first", f"300 stubs `up -d`: the 1st, req/s ({used})", rps("far_first"),
            "req/s", higher_is_better=True, control="far_bare_first",
            note=f"GET {urls['far_first']}; all 300 on port {port}"),
        Row("far_last", f"300 stubs `up -d`: the 300th, req/s ({used})", rps("far_last"),
            "req/s", higher_is_better=True, control="far_bare_last",
            note=f"GET {urls['far_last']}"),
        Row("far_share", "300 stubs `up -d`: 300th / 1st", share("far_last", "far_first"), "×",
            higher_is_better=True, control="far_bare_share",
            note="per round; 1.00× = no loss (goal: loses ≤ 10 %)"),
        Row("far_bare_first", f"control: bare aiohttp 300 sites, the 1st, req/s ({used})",
            rps("far_bare_first"), "req/s", higher_is_better=True),
        Row("far_bare_last", f"control: bare aiohttp 300 sites, the 300th, req/s ({used})",
            rps("far_bare_last"), "req/s", higher_is_better=True),
        Row("far_bare_share", "control: bare aiohttp 300 sites, 300th / 1st",
            share("far_bare_last", "far_bare_first"), "×", higher_is_better=True),
    ]  # fmt: skip
