"""Placeholders and templates are checked when a profile loads, each problem as FILE:LINE:COL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.errors import ProfileError
from sandbox.profile.limits import template_problem
from sandbox.profile.loader import load_profile_text
from sandbox.profile.placeholders import unknown_placeholders

SERVICES = ["api", "db"]


@pytest.mark.parametrize(
    "text",
    [
        "serve --host {address} --port {port} --url {url} --name {name}",
        "{python} -m http.server --directory {data} --tmp {tmp}",
        "client {services.db.address}:{services.db.port} {services.api.url} {services.db.name}",
        "curl -w '%{{http_code}}' and ${HOME} and {{port}} stay literal",
        "no placeholders at all",
    ],
)
def test_known_placeholders_pass(text: str) -> None:
    assert unknown_placeholders(text, SERVICES) == []


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("serve --port {prot}", ["prot"]),
        ("curl -w '%{http_code}'", ["http_code"]),
        ("x {services.cache.port} {services.db.host}", ["services.cache.port", "services.db.host"]),
        ("x {services.db}", ["services.db"]),
    ],
)
def test_unknown_placeholders_are_found(text: str, bad: list[str]) -> None:
    assert unknown_placeholders(text, SERVICES) == bad


def _errors(yaml_text: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile_text(textwrap.dedent(yaml_text), "p.yaml")
    return caught.value.problems


def test_unknown_placeholders_in_run_env_and_cwd_are_located() -> None:
    problems = _errors(
        """\
        name: t
        services:
          api:
            kind: command
            run: "curl -w '%{http_code}' {url}"
            cwd: "work/{nope}"
            env:
              PEER: "{services.cahce.url}"
              OK: "{services.api.port}"
          cache:
            kind: tcp
        """
    )
    assert problems[0].startswith("p.yaml:5:10 services.api.run: unknown placeholder {http_code}")
    assert "write {{http_code}} for a literal {http_code}" in problems[0]
    assert problems[1].startswith("p.yaml:6:10 services.api.cwd: unknown placeholder {nope}")
    assert problems[2] == (
        "p.yaml:8:13 services.api.env.PEER: unknown placeholder {services.cahce.url}: "
        'there is no service "cahce" (services: api, cache); write {{services.cahce.url}} '
        "for a literal {services.cahce.url}, and ${VAR} is left to the shell"
    )
    assert len(problems) == 3


def test_an_unclosed_quote_in_run_is_located() -> None:
    problems = _errors(
        """\
        name: t
        services:
          api: {kind: command, run: "sh -c 'echo hi"}
        """
    )
    assert problems == [
        "p.yaml:3:29 services.api.run: cannot be split into arguments: No closing quotation; "
        "close every quote, or write `sh -c '...'` when you need a shell"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "{{ path.id }}",
        "{% raw %}function f() { return {{a}}; }{% endraw %}",
        "{{ '{{' }} literal",
        "{{ 'x' * 1000000000 }} is not folded",
        "plain { braces } are text",
    ],
)
def test_valid_templates_pass(source: str) -> None:
    assert template_problem(source) is None


@pytest.mark.parametrize(
    "source", ["{{ path.id }", "{% if x %}no end", "{{ x is nosuchtest }}", "{# open"]
)
def test_template_syntax_errors_are_found(source: str) -> None:
    problem = template_problem(source)
    assert problem is not None
    assert problem.startswith("the template is not valid Jinja2: ")
    assert "{% raw %}" in problem


def test_template_errors_in_body_json_headers_and_file_are_located() -> None:
    problems = _errors(
        """\
        name: t
        services:
          web:
            kind: http
            routes:
              - path: /a
                response:
                  headers: {X-Id: "{{ path.id }"}
                  body: "{% if x %}"
              - path: /b
                responses:
                  - json: {items: [1, "{{ oops"]}
                  - file: "pages/{{ path.id }}.html"
        """
    )
    assert [p.split(" ", 2)[:2] for p in problems] == [
        ["p.yaml:8:27", "services.web.routes.0.response.headers.X-Id:"],
        ["p.yaml:9:17", "services.web.routes.0.response.body:"],
        ["p.yaml:12:31", "services.web.routes.1.responses.0.json.items.1:"],
        ["p.yaml:13:19", "services.web.routes.1.responses.1.file:"],
    ]
    assert "the template is not valid Jinja2: unexpected '}'" in problems[0]
    assert "`file:` is a path read as it is" in problems[3]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "SANDBOX_STATE_DIR": str(cwd / "state")},
    )


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_report_them_with_exit_3(tmp_path: Path, command: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nservices:\n  api:\n    kind: command\n    run: serve --port {prot}\n"
    )
    done = _run(command, str(path), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert f"{path}:5:10 services.api.run: unknown placeholder {{prot}}" in done.stderr
    done = _run(command, str(path), "--json", cwd=tmp_path)
    assert done.returncode == 3
    document = json.loads(done.stdout)
    assert "unknown placeholder {prot}" in json.dumps(document)
