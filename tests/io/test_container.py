"""Container mode: refused outside a container; inside one a stub listens on its interface."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.errors import ContainerModeError, ExitCode
from sandbox.io.container import container_binder, container_evidence
from tests.netns import netns_json


def test_no_evidence_on_a_plain_machine(tmp_path: Path) -> None:
    assert container_evidence({}, tmp_path) is None


@pytest.mark.parametrize(
    ("marker", "env", "says"),
    [
        (".dockerenv", {}, "/.dockerenv exists"),
        ("run/.containerenv", {}, "/run/.containerenv exists"),
        (None, {"container": "oci"}, "$container is 'oci'"),
    ],
)
def test_evidence_of_a_container(
    tmp_path: Path, marker: str | None, env: dict[str, str], says: str
) -> None:
    if marker is not None:
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).touch()
    assert container_evidence(env, tmp_path) == says


def test_container_mode_is_refused_outside_a_container(tmp_path: Path) -> None:
    with pytest.raises(ContainerModeError, match="only safe inside a container") as caught:
        container_binder({}, tmp_path)
    assert caught.value.exit_code is ExitCode.USAGE
    assert "without --container-listen" in (caught.value.hint or "")


# In a private network namespace (the only place a test may hold 0.0.0.0), a fake container
# root: the stub's socket is the wildcard, and it answers on any local address.
_CHILD = textwrap.dedent(
    """
    import asyncio, json, pathlib, socket, tempfile, urllib.request
    from sandbox.io.container import container_binder
    from sandbox.runtime.sandbox import Sandbox
    from sandbox.profile.loader import load_profile_data

    root = pathlib.Path(tempfile.mkdtemp())
    (root / ".dockerenv").touch()
    profile = load_profile_data({"name": "c", "services": {"api": {
        "kind": "http", "address": "127.0.0.5", "port": 8000,
        "routes": [{"path": "/", "response": {"body": "inside"}}]}}})

    def get(url):
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    async def main():
        box = Sandbox(profile, bind=container_binder({}, root))
        async with box:
            bound = box.services["api"]._sock.getsockname()
            return {
                "bound": list(bound),
                "address": box.address("api"),
                "planned": await asyncio.to_thread(get, "http://127.0.0.5:8000/"),
                "other": await asyncio.to_thread(get, "http://127.0.0.77:8000/"),
            }

    print(json.dumps(asyncio.run(main())))
    """
)


@pytest.mark.netns
def test_container_mode_listens_on_the_interface_and_is_probed_on_loopback() -> None:
    seen = netns_json(_CHILD)
    assert seen["bound"] == ["0.0.0.0", 8000]
    assert seen["address"] == "127.0.0.5"  # readiness probes the planned loopback address
    assert seen["planned"] == "inside"
    assert seen["other"] == "inside"  # any address of the namespace reaches it
