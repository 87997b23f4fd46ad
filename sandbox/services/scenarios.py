"""State a stub keeps across requests: scenario states and variables, and how routes move them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.profile.models import Route, ScenarioStep
from sandbox.services.templates import Text, compile_json, render_json

STARTED = "Started"  # every scenario's state at start and after a reset (as in WireMock)
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+\.\d+")


def stored(value: Any) -> Any:
    """A rendered `set` value as kept: text that reads as a number becomes that number, so
    `{{ vars.count + 1 }}` counts; anything else is kept as it is."""
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text):
            return float(text)
    return value


@dataclass(frozen=True)
class Effects:
    """What answering one route does to the state: a scenario move and variable updates."""

    step: ScenarioStep | None
    sets: tuple[tuple[str, Any], ...]  # values compiled by compile_json (strings as Text)

    @classmethod
    def of(cls, route: Route, where: str) -> Effects:
        """Compile a route's `set` templates. Raises StubConfigError for template syntax."""
        sets = tuple(
            (name, compile_json(value, f"{where}.set.{name}")) for name, value in route.set_.items()
        )
        return cls(step=route.scenario, sets=sets)


class StubState:
    """One service's scenarios (name -> state) and variables, kept until the sandbox stops
    or a reset. Used only from the stub's event loop."""

    def __init__(self, initial_vars: Mapping[str, Any], scenarios: Iterable[str] = ()) -> None:
        self._initial_vars = dict(initial_vars)
        self._known = tuple(dict.fromkeys(scenarios))
        self.scenarios: dict[str, str] = {}
        self.vars: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Every scenario back to `Started`, every variable back to its initial value."""
        self.scenarios = dict.fromkeys(self._known, STARTED)
        self.vars = dict(self._initial_vars)

    def state_of(self, scenario: str) -> str:
        return self.scenarios.get(scenario, STARTED)

    def failure(self, step: ScenarioStep | None) -> str | None:
        """Why a route with `step` cannot answer now, or None if it can."""
        if step is None or step.when is None:
            return None
        current = self.state_of(step.name)
        if current == step.when:
            return None
        return f"scenario {step.name!r} is in state {current!r}, not {step.when!r}"

    def template_view(self) -> dict[str, Any]:
        """What templates see: `vars.NAME` and `scenarios.NAME`."""
        return {"vars": dict(self.vars), "scenarios": dict(self.scenarios)}

    def apply(self, effects: Effects, variables: Mapping[str, Any]) -> None:
        """Render every `set` value against the state before this request, then store them
        and move the scenario. Raises RenderError (and changes nothing) if a template fails."""
        if not effects.sets and (effects.step is None or effects.step.then is None):
            return  # most routes: nothing to do, and this runs for every request
        view = {**variables, **self.template_view()}
        rendered = {
            name: stored(value.render(view))
            if isinstance(value, Text)
            else render_json(value, view)
            for name, value in effects.sets
        }
        self.vars.update(rendered)
        if effects.step is not None and effects.step.then is not None:
            self.scenarios[effects.step.name] = effects.step.then

    def replace(
        self, *, scenarios: Mapping[str, str] | None = None, vars: Mapping[str, Any] | None = None
    ) -> None:
        """Set the scenarios and/or the variables given (each replaces what was there)."""
        if scenarios is not None:
            self.scenarios = {**dict.fromkeys(self._known, STARTED), **scenarios}
        if vars is not None:
            self.vars = dict(vars)

    def to_json(self) -> dict[str, Any]:
        return {"scenarios": dict(self.scenarios), "vars": dict(self.vars)}
