"""Helpers the import/export tests share: golden files (rewrite them with
SANDBOX_UPDATE_GOLDEN=1), runnable imported profiles, and asking their stubs."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from sandbox.io.report import ImportResult
from sandbox.io.write import profile_yaml, write_result
from sandbox.profile.loader import load_profile_text


def check_golden(result: ImportResult, golden: Path) -> None:
    """The imported profile is valid and reads exactly as the golden file."""
    text = profile_yaml(result.profile)
    load_profile_text(text, str(golden))
    if os.environ.get("SANDBOX_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"differs from {golden}"


def losses(result: ImportResult) -> set[tuple[str, str]]:
    return {(loss.location, loss.kind.value) for loss in result.losses}


def write_runnable(result: ImportResult, target: Path, addresses: list[Any]) -> Path:
    """Write the profile with every port `auto` and literal spare loopback addresses."""
    data: dict[str, Any] = yaml.safe_load(profile_yaml(result.profile))
    for service, address in zip(data["services"].values(), addresses, strict=False):
        service["port"] = "auto"
        service["address"] = str(address)
    result.profile = data
    write_result(result, target)
    return target


def http(address: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send one raw HTTP/1.1 request (with `Connection: close`) and read the whole answer."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def ask(
    url: str, method: str = "GET", body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], str]:
    """One HTTP request: the status, headers and text of the answer, errors included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def drain(sock: socket.socket) -> None:
    """Read until the peer closes (a stub's fault answers end the connection)."""
    while sock.recv(1024):
        pass
