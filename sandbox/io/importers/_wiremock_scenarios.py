"""WireMock scenarios (state machines over mappings) as routes.

The profile format has no scenario state yet. A scenario whose mappings all take the same
request and whose states form one chain from `Started` becomes one route answering in turn
(`responses`). Everything else keeps the mappings that answer in the `Started` state and
reports the rest. When the format gains a `scenario:` field on routes, only `scenario_routes`
changes: emit each mapping's route with its state and next state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.io.importers._where import Where

STARTED = "Started"


@dataclass
class Mapped:
    """One converted mapping: its route, where it came from, and how it sorts."""

    route: dict[str, Any]
    where: Where
    priority: int
    order: int
    scenario: str | None = None
    required: str | None = None
    new_state: str | None = None

    @property
    def request(self) -> dict[str, Any]:
        return {k: v for k, v in self.route.items() if k not in ("response", "fault")}


def scenario_routes(group: list[Mapped]) -> list[Mapped]:
    """The routes that stand for one scenario's mappings, losses reported."""
    chain = _chain(group)
    if chain is not None:
        first, end = chain[0], chain[-1]
        answers = [m.route["response"] for m in chain]
        route = {**first.request, "responses": answers} if len(chain) > 1 else first.route
        if end.new_state != STARTED and len(chain) > 1:
            first.where.at("scenarioName").approximate(
                f"scenario {first.scenario!r}: the answers are given in turn; after the last "
                "the route starts again from the first, where WireMock keeps answering "
                f"in state {end.new_state or end.required!r}"
            )
        priority = min(m.priority for m in chain)
        return [Mapped(route, first.where, priority, first.order)]
    kept = []
    for m in group:
        if m.required not in (None, STARTED):
            m.where.at("requiredScenarioState").drop(
                f"scenario {m.scenario!r}: state {m.required!r} is never reached without "
                "scenario state; the mapping is left out"
            )
            continue
        if m.new_state is not None:
            m.where.at("newScenarioState").drop(
                f"scenario {m.scenario!r}: the move to state {m.new_state!r} is left out; "
                "the mapping answers as in the starting state"
            )
        kept.append(m)
    return kept


def _chain(group: list[Mapped]) -> list[Mapped] | None:
    """The mappings in state order when they form one chain over one request, else None."""
    by_state: dict[str, Mapped] = {}
    for m in group:
        if m.required is None or m.required in by_state or "response" not in m.route:
            return None
        by_state[m.required] = m
        if m.request != group[0].request:
            return None
    chain, state = [], STARTED
    while state in by_state and by_state[state] not in chain:
        chain.append(by_state[state])
        state = by_state[state].new_state or state
    if len(chain) != len(group):
        return None
    end = chain[-1]
    # the chain must end by looping to the start, or by staying in its last state
    if (end.new_state or end.required) not in (STARTED, end.required):
        return None
    return chain
