"""The one sandboxed Jinja2 environment of stub templates, imported on the first template:
a profile without templates never pays for importing Jinja2."""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from sandbox.profile.limits import MAX_EXPONENT
from sandbox.services.template_extras import install as install_extras


# Autoescape stays off: bodies are JSON or plain text, and HTML-escaping would corrupt both.
# StrictUndefined turns `{{ path.idd }}` into an error that names `idd` instead of "".
class _Environment(SandboxedEnvironment):
    """Powers are checked at run time (and so never folded while compiling): `10**5000`
    would build a number too long to print, `10**10**10` one that never finishes."""

    intercepted_binops = frozenset(["**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (not isinstance(right, int | float) or abs(right) > MAX_EXPONENT):
            raise SecurityError(f"`**` is limited to exponents of at most {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


ENV = _Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
install_extras(ENV)
