"""The sandbox's own certificate authority: made at `up`, certificates for `tls: true` stubs."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

TLS_FOLDER = "tls"
BUNDLE = "ca.pem"


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only; never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@dataclass(frozen=True)
class Authority:
    """Where the CA certificate (`bundle`) and each service's key + certificate chain are.

    The CA's private key is never written anywhere: it signs the certificates at `up` and
    goes when the process does, so nothing can mint certificates the bundle vouches for.
    """

    folder: Path
    bundle: Path
    certificates: dict[str, Path]


def bundle_path(state_folder: Path) -> Path:
    """Where a sandbox whose state lives in `state_folder` keeps its CA bundle."""
    return state_folder / TLS_FOLDER / BUNDLE


def make_authority(folder: Path, sandbox: str, services: dict[str, list[str]]) -> Authority:
    """A new CA, with one certificate per service naming its `services[name]` addresses
    (IP literals or `localhost`). Everything is written to `folder` (made afresh, 0700;
    files 0600). Raises OSError when the folder cannot be written.
    """
    import trustme  # paid for only by sandboxes that serve HTTPS

    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)
    ca = trustme.CA(organization_name=f"sandbox {sandbox}", organization_unit_name="local CA")
    bundle = folder / BUNDLE
    _write_private(bundle, ca.cert_pem.bytes())
    certificates: dict[str, Path] = {}
    for name, identities in services.items():
        leaf = ca.issue_cert(*identities, common_name=identities[0])
        path = folder / f"{name}.pem"
        _write_private(path, leaf.private_key_and_cert_chain_pem.bytes())
        certificates[name] = path
    return Authority(folder=folder, bundle=bundle, certificates=certificates)


def find_bundle(state_root: Path, name: str) -> Path:
    """The CA bundle of the running sandbox `name` (what `sandbox ca NAME` prints).

    Raises UsageError when the sandbox is not running or has no `tls: true` service.
    """
    from sandbox.errors import UsageError
    from sandbox.runtime.state import StateDir, is_locked

    state = StateDir(state_root, name)
    if state.read() is None or not is_locked(state_root, name):
        raise UsageError(
            f'sandbox "{name}" is not running, so it has no CA.',
            "`sandbox status` lists the running sandboxes.",
        )
    bundle = bundle_path(state.path)
    if not bundle.is_file():
        raise UsageError(
            f'sandbox "{name}" has no CA: none of its services has `tls: true`.',
            "Add `tls: true` to an http service to serve HTTPS.",
        )
    return bundle


def running_bundles(state_root: Path) -> list[Path]:
    """The CA bundles of every running sandbox (for `sandbox probe https://...`)."""
    from sandbox.runtime.state import is_locked, list_sandboxes

    return [
        bundle_path(state.path)
        for state in list_sandboxes(state_root)
        if bundle_path(state.path).is_file() and is_locked(state_root, state.name)
    ]
