"""Plan and bind, again when a moving strategy loses a bind race to another process."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from sandbox.errors import BindError
from sandbox.plan import OnConflict, Plan

ATTEMPTS = 5  # each re-reads the socket table, which now shows the winner of the race

Bound = dict[str, socket.socket]


def plan_and_bind(
    make_plan: Callable[[], Plan],
    bind: Callable[[Plan], Bound],
    on_conflict: OnConflict,
    *,
    attempts: int = ATTEMPTS,
) -> tuple[Plan, Bound]:
    """The plan `make_plan` gives and the sockets `bind` holds for it.

    Between reading the socket table and binding, another process (a second pytest worker
    starting the same profile) may take a pair the plan chose. Under `next-address` or
    `next-port` that lost race (EADDRINUSE) means: plan again around the new listener and
    bind again, up to `attempts` times. Under `fail` it is the user's conflict, raised at
    once. Raises what `make_plan` and `bind` raise; `bind` leaves nothing open when it fails.
    """
    for attempt in range(1, attempts + 1):
        plan = make_plan()
        try:
            return plan, bind(plan)
        except BindError as exc:
            lost_race = exc.errno == errno.EADDRINUSE and on_conflict != "fail"
            if not lost_race or attempt == attempts:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")
