"""The har importer: golden profiles and loss reports for recordings, refusals, and a live run."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import sandbox
from sandbox.errors import ExitCode, SourceError
from sandbox.io.importers.har import import_har
from sandbox.io.importers.har_answers import REDACTED
from sandbox.io.report import ImportResult
from sandbox.io.write import profile_yaml, write_result
from sandbox.profile.loader import load_profile_text
from tests.io.helpers import check_golden

SAMPLES = Path(__file__).parent / "samples" / "har"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
A, D = "approximated", "dropped"
EVERY = {
    (D, "#/log/entries/*/request/headers"),
    (D, "#/log/entries/*/request/postData"),
    (A, "#/log/entries/*/timings"),
}
EXPECTED_LOSSES = {
    "shop-session": EVERY | {
        (A, "#/log/entries/0/request/url"),  # https: no TLS
        (A, "#/log/entries/2/request/url"),
        (A, "#/log/entries/5/response/headers/1"),  # Set-Cookie redacted
        (D, "#/log/entries/5/response/headers/2"),  # a second Set-Cookie
    },
    "login-flow": EVERY | {
        (A, "#/log/entries/0/response/headers/1"),  # X-Api-Key redacted
        (A, "#/log/entries/1/request/queryString"),  # access_token redacted
        (A, "#/log/entries/2/request/queryString"),
        (D, "#/log/entries/4/response/content"),  # body not saved
        (D, "#/log/entries/5/response/status"),  # blocked request
        (D, "#/log/entries/6/request/url"),  # ws://
        (D, "#/log/entries/7/request/url"),  # data:
        (A, "#/log/entries/8/request/queryString"),  # a repeated parameter
    },
    "dashboard-http2": {
        (D, "#/log/entries/*/request/headers"),
        (A, "#/log/entries/*/timings"),
        (A, "#/log/entries/1/response/headers/3"),  # x-auth-token redacted
    },
    "login-flow-secrets": EVERY | {
        (D, "#/log/entries/4/response/content"),
        (D, "#/log/entries/5/response/status"),
        (D, "#/log/entries/6/request/url"),
        (D, "#/log/entries/7/request/url"),
        (A, "#/log/entries/8/request/queryString"),
    },
}  # fmt: skip
CASES = {
    "dashboard-http2": ("dashboard-http2.har", False),
    "shop-session": ("shop-session.har", False),
    "login-flow": ("login-flow.har", False),
    "login-flow-secrets": ("login-flow.har", True),
}


def _import(case: str) -> ImportResult:
    source, keep = CASES[case]
    return import_har(SAMPLES / source, keep_secrets=keep)


@pytest.mark.parametrize("case", sorted(CASES))
def test_recording_matches_its_golden_profile(case: str) -> None:
    check_golden(_import(case), SAMPLES / f"{case}.profile.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_recording_reports_every_loss_with_its_location(case: str) -> None:
    result = _import(case)
    source = CASES[case][0]
    found = {(loss.kind.value, loss.location) for loss in result.losses}
    assert found == {(kind, f"{source}{where}") for kind, where in EXPECTED_LOSSES[case]}
    assert len(found) == len(result.losses), "a loss is reported twice"


@pytest.mark.parametrize("case", sorted(CASES))
def test_recording_profile_validates(case: str) -> None:
    profile = load_profile_text(profile_yaml(_import(case).profile), f"{case}.yaml")
    assert len(profile.services) == 2


def test_one_service_per_origin_on_its_original_port() -> None:
    services = _import("shop-session").profile["services"]
    assert {name: s["port"] for name, s in services.items()} == {
        "shop-example-com": 443,
        "api-shop-example-com": 443,
    }
    login = _import("login-flow").profile["services"]
    assert {name: s["port"] for name, s in login.items()} == {
        "host-127-0-0-1": 5000,
        "localhost": 5001,
    }


def test_secrets_are_redacted_unless_kept() -> None:
    redacted = json.dumps(_import("login-flow").profile)
    kept = json.dumps(_import("login-flow-secrets").profile)
    for secret in ("live_5f2a9c", "abc123"):
        assert secret not in redacted
        assert secret in kept
    assert REDACTED in redacted
    assert "Bearer realm=app" in redacted  # WWW-Authenticate names a scheme, not a secret
    shop = json.dumps(_import("shop-session").profile)
    assert "c-77; Path" not in shop
    assert "s3cr3t" not in shop


def test_binary_answers_become_files_beside_the_profile() -> None:
    result = _import("shop-session")
    assert result.files == {"har-files/shop-example-com/entry-1.png": PNG}


def test_long_text_goes_to_a_file_and_http2_pseudo_headers_are_dropped() -> None:
    result = _import("dashboard-http2")
    ((name, content),) = result.files.items()
    assert name == "har-files/localhost/entry-0.js"
    assert content.count(b"console.log('{{ not a template }}');") == 2000
    routes = result.profile["services"]["localhost"]["routes"]
    assert routes[0]["response"]["headers"] == {
        "Content-Type": "application/javascript",
        "server": "nginx",
    }
    options = result.profile["services"]["localhost-9090"]["routes"][1]
    assert options["response"]["headers"]["vary"] == "Origin, Accept"


def test_hop_by_hop_headers_are_dropped() -> None:
    routes = _import("shop-session").profile["services"]["shop-example-com"]["routes"]
    assert set(routes[0]["response"]["headers"]) == {"Content-Type", "Cache-Control"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "shop.har:1:2: the HAR file is not valid JSON"),
        ('{"log": {}}', "is not a HAR file: it has no `log.entries` list"),
        ('{"log": {"entries": []}}', "records no HTTP request"),
    ],
)
def test_unusable_recordings_are_refused(tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "shop.har"
    source.write_text(content)
    with pytest.raises(SourceError) as caught:
        import_har(source)
    assert message in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_PROFILE


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.har"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a regular file"):
        import_har(fifo)


def _fetch(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers.get("Content-Type", "")


def test_imported_recording_answers_over_loopback(
    tmp_path: Path, spare_loopback: Callable[[int], list[IPv4Address]]
) -> None:
    result = _import("shop-session")
    services = result.profile["services"]
    for service, address in zip(services.values(), spare_loopback(len(services)), strict=True):
        service["address"], service["port"] = str(address), "auto"
    target = tmp_path / "profile" / "shop.yaml"
    write_result(result, target)
    with sandbox.run(target, state_root=tmp_path / "state") as sb:
        shop, api = sb.url("shop-example-com"), sb.url("api-shop-example-com")
        status, body, _ = _fetch(f"{shop}/")
        assert (status, body) == (200, b"<!doctype html><title>Shop</title>"
                                       b"<div id=app>{{ cart.count }} items</div>")  # fmt: skip
        assert _fetch(f"{shop}/static/logo.png") == (200, PNG, "image/png")
        status, body, kind = _fetch(f"{api}/v1/products?sort=price&page=2")
        assert (status, json.loads(body)["items"][0]["name"], kind) == (
            200,
            "Toaster",
            "application/json",
        )
        status, body, _ = _fetch(f"{api}/v1/search/caf%C3%A9%20cr%C3%A8me")
        assert (status, json.loads(body)) == (200, {"hits": ["Café crème"]})
        states = [_fetch(f"{api}/v1/orders/42")[:2] for _ in range(4)]
        assert [(s, json.loads(b)["state"]) for s, b in states] == [
            (202, "processing"), (200, "shipped"), (200, "shipped"), (202, "processing")
        ]  # fmt: skip
