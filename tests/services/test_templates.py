"""Response templates: compiled once, sandboxed, strict about undefined names."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from sandbox.services.context import Peer
from sandbox.services.http import create_app
from sandbox.services.templates import (
    RenderError,
    StubConfigError,
    compile_json,
    compile_text,
    has_templates,
    render_json,
)
from tests.services.helpers import context, http_spec


def test_plain_text_is_not_compiled() -> None:
    text = compile_text("no markers here: {x} %s", "body")
    assert text.template is None
    assert text.render({}) == "no markers here: {x} %s"


def test_text_renders_variables_and_keeps_a_trailing_newline() -> None:
    assert compile_text("hi {{ name }}\n", "body").render({"name": "ada"}) == "hi ada\n"


def test_an_undefined_variable_is_an_error_naming_it() -> None:
    with pytest.raises(RenderError) as caught:
        compile_text("{{ path.idd }}", "routes[0].response.body").render({"path": {"id": "1"}})
    assert "idd" in caught.value.detail
    assert caught.value.where == "routes[0].response.body"


def test_the_sandbox_refuses_private_attributes() -> None:
    with pytest.raises(RenderError) as caught:
        compile_text("{{ ''.__class__.__mro__ }}", "body").render({})
    assert "__class__" in caught.value.detail


def test_a_syntax_error_is_reported_when_compiling() -> None:
    with pytest.raises(StubConfigError) as caught:
        compile_text("{{ unclosed", "services.api.routes[1].response.body")
    assert "services.api.routes[1].response.body" in caught.value.message


def test_json_keeps_its_structure_and_non_string_values() -> None:
    compiled = compile_json(
        {"id": "{{ n }}", "list": ["{{ n }}-a", 3, None, True], "nested": {"k": "plain"}}, "json"
    )
    assert has_templates(compiled)
    assert not has_templates(compile_json({"a": ["b", 1]}, "json"))
    assert render_json(compiled, {"n": 7}) == {
        "id": "7",
        "list": ["7-a", 3, None, True],
        "nested": {"k": "plain"},
    }


async def test_request_variables_reach_templates(aiohttp_client: Any) -> None:
    peers = {"api": Peer(name="api", address="127.0.0.9", port=9000, url="http://127.0.0.9:9000")}
    body = (
        "{{ method }} {{ path.id }} {{ query.q }} {{ headers['X-Name'] }} "
        "{{ json.who }} {{ services.api.url }} {{ services.api.port }} {{ body|length }}"
    )
    spec = http_spec({"path": "/t/{id}", "response": {"body": body}})
    c = await aiohttp_client(create_app(spec, context("web", peers=peers)))
    resp = await c.post("/t/5?q=a&q=b", json={"who": "ada"}, headers={"x-name": "N"})
    assert await resp.text() == "POST 5 a N ada http://127.0.0.9:9000 9000 14"


async def test_an_undefined_variable_answers_500_naming_it(aiohttp_client: Any) -> None:
    spec = http_spec({"path": "/u/{id}", "response": {"json": {"id": "{{ path.idd }}"}}})
    c = await aiohttp_client(create_app(spec, context("web")))
    resp = await c.get("/u/1")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "a response template failed"
    assert body["where"] == "services.web.routes[0].response.json.id"
    assert "idd" in body["detail"]
    assert body["template"] == "{{ path.idd }}"


async def test_json_is_none_when_the_body_is_not_json(aiohttp_client: Any) -> None:
    spec = http_spec({"path": "/", "response": {"body": "{{ json is none }}"}})
    c = await aiohttp_client(create_app(spec, context("web")))
    assert await (await c.post("/", data="plain words")).text() == "True"


SIMPLE_VARIABLES: dict[str, Any] = {
    "path": {"id": "42", "items": "a key named like a dict method"},
    "n": None,
    "peer": Peer("api", "127.0.0.2", 80, "http://127.0.0.2:80"),
    "headers": {"X": "1"},
    "num": 7,
}


@pytest.mark.parametrize(
    "source",
    ["id={{ path.id }}", "{{path.id}}-{{ num }}\n", "{{ n }}", "{{ peer.url }}/x",
     "{{ path.items }}", "{{ path }}", "{{- path.id -}} ", "{{ range }}"],
)  # fmt: skip
def test_a_simple_template_renders_as_jinja_renders_it(source: str) -> None:
    text = compile_text(source, "body")
    assert text.template is not None
    assert text.render(SIMPLE_VARIABLES) == text.template.render(SIMPLE_VARIABLES)


def test_simple_templates_take_the_fast_way_and_others_do_not() -> None:
    assert compile_text("a {{ path.id }} b", "body").parts == ("a ", ("path", ("id",)), " b")
    assert compile_text("{{ path.id | upper }}", "body").parts is None
    assert compile_text("{% if x %}y{% endif %}", "body").parts is None
    assert compile_text("{{ path['id'] }}", "body").parts is None


@pytest.mark.parametrize("source", ["{{ path.idd }}", "{{ nope }}", "{{ peer.__class__ }}"])
def test_a_simple_template_fails_as_jinja_fails(source: str) -> None:
    text = compile_text(source, "body")
    assert text.template is not None
    with pytest.raises(RenderError) as caught:
        text.render(SIMPLE_VARIABLES)
    with pytest.raises(jinja2.TemplateError) as direct:
        text.template.render(SIMPLE_VARIABLES)
    assert caught.value.detail == str(direct.value)


def test_the_names_a_template_reads() -> None:
    text = compile_text("{% for k in query %}{{ k }}{{ path.id }}{% endfor %}{{ range(2) }}", "b")
    assert text.names == {"query", "path"}  # range is a global, not a variable
