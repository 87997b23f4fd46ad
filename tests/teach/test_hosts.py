"""Tests for sandbox.teach.hosts: the lines and the marked block on temp files (not /etc/hosts)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from sandbox.errors import UsageError
from sandbox.output import Printer
from sandbox.output.hosts import render
from sandbox.plan import make_plan
from sandbox.proc.processes import ref_for
from sandbox.profile.loader import load_profile
from sandbox.runtime.state import ProcessRef, SandboxRecord, ServiceRecord, StateDir
from sandbox.teach.hosts import (
    HostsEntry,
    HostsFileError,
    block_lines,
    hosts,
    hosts_lines,
    remove_block,
    write_block,
)

OTHER = b"127.0.0.1\tlocalhost\n# a comment   with spaces  \n\n::1 ip6-localhost ip6-loopback\n"
ENTRIES = [HostsEntry("127.20.0.2", "api.demo.test", "api", 8000, "http")]


def block_bytes(name: str, entries: list[HostsEntry]) -> bytes:
    return "".join(line + "\n" for line in block_lines(name, entries)).encode()


def test_lines_from_the_plan_name_every_service_at_its_address() -> None:
    profile = load_profile("web-db-api")
    plan = make_plan(profile)
    entries = hosts_lines(profile)
    assert [e.service for e in entries] == list(profile.services)  # as the profile lists them
    for entry in entries:
        assert entry.name == f"{entry.service}.web-db-api.test"
        assert entry.address == str(plan.service(entry.service).address)
        assert entry.line == f"{entry.address} {entry.name}"
    assert entries[0].url == f"http://web.web-db-api.test:{plan.service('web').port}"


def test_ipv6_services_get_ipv6_lines() -> None:
    entries = hosts_lines(load_profile("ipv6-pair"))
    assert {e.line for e in entries} == {"::1 web.ipv6-pair.test", "::1 cache.ipv6-pair.test"}
    assert "::1 web.ipv6-pair.test" in block_lines("ipv6-pair", entries)


def _record(supervisor: ProcessRef | None) -> SandboxRecord:
    api = ServiceRecord("api", "http", "127.99.0.7", 8123, "http://127.99.0.7:8123", "/l/a.log")
    return SandboxRecord(
        name="web-db-api",
        profile="web-db-api",
        profile_path=None,
        supervisor=supervisor,
        started_at=time.time(),
        status="running",
        services=(api,),
    )


def test_a_running_sandbox_record_wins_over_the_plan(tmp_path: Path) -> None:
    StateDir(tmp_path, "web-db-api").write(_record(ref_for(os.getpid())))
    report = hosts("web-db-api", state_root=tmp_path, nsswitch=tmp_path / "none")
    assert report.source == "running"
    assert [e.line for e in report.entries] == ["127.99.0.7 api.web-db-api.test"]
    assert report.action == "printed"
    assert report.file is None


def test_a_stale_record_is_ignored(tmp_path: Path) -> None:
    StateDir(tmp_path, "web-db-api").write(_record(None))
    report = hosts("web-db-api", state_root=tmp_path, nsswitch=tmp_path / "none")
    assert report.source == "plan"
    assert report.entries == tuple(hosts_lines(load_profile("web-db-api")))


def test_write_twice_then_remove_leaves_other_lines_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(OTHER)
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert write_block(path, "demo", ENTRIES)
    assert path.read_bytes() == OTHER + block_bytes("demo", ENTRIES)
    assert path.stat().st_mode & 0o777 == 0o640  # the mode is kept
    assert path.stat().st_ino != inode  # replaced (rename), never written in place
    assert not any(p.name != "hosts" for p in tmp_path.iterdir())  # no temp file left
    before = path.stat()
    assert not write_block(path, "demo", ENTRIES)  # idempotent: one block, file untouched
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.read_bytes().count(b"# >>> sandbox demo >>>") == 1
    assert remove_block(path, "demo")
    assert path.read_bytes() == OTHER
    assert not remove_block(path, "demo")
    assert path.read_bytes() == OTHER


def test_a_changed_block_is_replaced_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    old = [HostsEntry("127.20.0.9", "old.demo.test", "old", 1)]
    other = block_bytes("other", [HostsEntry("::1", "x.other.test", "x", 2)])
    path.write_bytes(b"head\r\n" + block_bytes("demo", old) + other + b"tail")
    assert write_block(path, "demo", ENTRIES)
    data = path.read_bytes()
    # The file's CRLF style is followed inside our block; everything else is as it was.
    ours = "".join(line + "\r\n" for line in block_lines("demo", ENTRIES)).encode()
    assert data == b"head\r\n" + ours + other + b"tail"


def test_missing_file_is_created_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    report = hosts("web-db-api", state_root=None, nsswitch=tmp_path / "none")
    assert report.action == "printed"
    assert not path.exists()
    assert not remove_block(path, "demo")
    assert not path.exists()
    report = hosts("web-db-api", state_root=None, write=path, nsswitch=tmp_path / "none")
    assert report.action == "written"
    assert path.read_bytes() == block_bytes("web-db-api", list(report.entries))
    assert path.stat().st_mode & 0o777 == 0o644
    again = hosts("web-db-api", state_root=None, write=path, nsswitch=tmp_path / "none")
    assert again.action == "unchanged"
    gone = hosts("web-db-api", state_root=None, write=path, remove=True)
    assert gone.action == "removed"
    assert path.read_bytes() == b""


def test_a_file_without_a_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(b"127.0.0.1 localhost")
    write_block(path, "demo", ENTRIES)
    # The block starts on a line of its own: the only byte added outside it is that newline.
    assert path.read_bytes() == b"127.0.0.1 localhost\n" + block_bytes("demo", ENTRIES)
    remove_block(path, "demo")
    assert path.read_bytes() == b"127.0.0.1 localhost\n"


def test_an_unclosed_block_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    damaged = OTHER + b"# >>> sandbox demo >>>\n127.20.0.2 api.demo.test\n"
    path.write_bytes(damaged)
    with pytest.raises(HostsFileError, match=r"hosts:5 opens the block of sandbox demo"):
        write_block(path, "demo", ENTRIES)
    with pytest.raises(HostsFileError):
        remove_block(path, "demo")
    assert path.read_bytes() == damaged


def test_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    real, link = tmp_path / "real-hosts", tmp_path / "hosts"
    real.write_bytes(OTHER)
    link.symlink_to(real)
    write_block(link, "demo", ENTRIES)
    assert link.is_symlink()
    assert real.read_bytes() == OTHER + block_bytes("demo", ENTRIES)


def test_only_loopback_and_valid_names_are_written(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    with pytest.raises(ValueError, match="not a loopback address"):
        write_block(path, "demo", [HostsEntry("10.0.0.1", "a.demo.test", "a", 1)])
    with pytest.raises(ValueError, match="not a valid host name"):
        write_block(path, "demo", [HostsEntry("127.0.0.2", "a b.test", "a", 1)])
    with pytest.raises(ValueError, match="not a sandbox name"):
        write_block(path, "../etc", ENTRIES)
    assert not path.exists()


def test_remove_needs_the_file_and_works_for_a_deleted_profile(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--remove needs the file"):
        hosts("web-db-api", state_root=None, remove=True)
    path = tmp_path / "hosts"
    path.write_bytes(OTHER + block_bytes("gone-profile", ENTRIES))
    report = hosts("gone-profile", state_root=None, write=path, remove=True)
    assert report.action == "removed"
    assert path.read_bytes() == OTHER


@pytest.mark.parametrize(
    ("nsswitch", "words"),
    [
        ("passwd: files\nhosts:          files dns  # the usual\n", "reads the hosts file before"),
        ("hosts: dns files\n", "is not read first here"),
        ("# hosts: files dns\n", "No `hosts:` line"),
    ],
)
def test_the_sentence_follows_nsswitch(tmp_path: Path, nsswitch: str, words: str) -> None:
    conf = tmp_path / "nsswitch.conf"
    conf.write_text(nsswitch)
    report = hosts("web-db-api", state_root=None, nsswitch=conf)
    assert words in report.sentences[0]
    assert any("RFC 6761" in s for s in report.sentences)
    assert report.to_json()["block"] == block_lines("web-db-api", list(report.entries))


def test_render_puts_the_block_on_stdout_and_the_why_on_stderr(tmp_path: Path) -> None:
    report = hosts("ipv6-pair", state_root=None, nsswitch=tmp_path / "none")
    out, err = io.StringIO(), io.StringIO()
    render(report, Printer(out=out, err=err, colour=False))
    assert out.getvalue().splitlines() == block_lines("ipv6-pair", list(report.entries))
    assert "RFC 6761" in err.getvalue()
    assert "Nothing was written" in err.getvalue()
