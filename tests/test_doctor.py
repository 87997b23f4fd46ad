"""Tests for sandbox.doctor: real loopback sockets, and seams for hosts, /proc and the resolver."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import doctor
from sandbox.doctor import (
    IPV4_SPREAD,
    Check,
    check_bindv6only,
    check_ephemeral_range,
    check_hosts_file,
    check_ipv4_range,
    check_ipv6_loopback,
    check_localhost,
    check_unprivileged_ports,
    overall,
    probe,
    run_checks,
)
from tests.netns import netns_json

NAMES = [
    "ipv4-range",
    "ipv6-loopback",
    "localhost",
    "hosts-file",
    "unprivileged-ports",
    "ephemeral-range",
    "bindv6only",
]
# Leaves lo with 127.0.0.1/32 alone, as macOS ships it.
MACOS_LIKE = (
    "ip link set lo up && ip addr del 127.0.0.1/8 dev lo && ip addr add 127.0.0.1/32 dev lo"
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def write_proc(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    """A fake /proc/sys with the three files doctor reads, as this machine has them."""
    return write_proc(
        tmp_path / "proc-sys",
        {
            "net/ipv4/ip_unprivileged_port_start": "1024\n",
            "net/ipv4/ip_local_port_range": "32768\t60999\n",
            "net/ipv6/bindv6only": "0\n",
        },
    )


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(
        "# static table lookup\n"
        "127.0.0.1\tlocalhost\n"
        "# ::1 localhost (commented out)\n"
        "10.1.2.3 build-box\n"
        "::1 ip6-localhost ip6-loopback\n"
    )
    return path


def fixed(addresses: list[str]) -> Callable[[str], list[str]]:
    def resolve(host: str) -> list[str]:
        assert host == "localhost"
        return addresses

    return resolve


# --- real sockets --------------------------------------------------------------------------


def test_probe_connects_and_leaves_no_socket_open() -> None:
    before = open_fds()
    outcome = probe("127.0.0.1")
    assert open_fds() == before
    assert outcome["bound"] is True
    assert outcome["reachable"] is True
    assert isinstance(outcome["port"], int)
    assert outcome["port"] > 0
    assert isinstance(outcome["connect_us"], float)
    assert outcome["connect_us"] > 0


def test_probe_reports_the_errno_of_a_failed_connect() -> None:
    # 127.255.255.255 is the broadcast route: it binds, but connect() fails (FIELD-NOTES 1).
    outcome = probe("127.255.255.255")
    assert outcome["bound"] is True
    assert outcome["reachable"] is False
    assert outcome["errno"] == "ENETUNREACH"


def test_ipv4_range_is_ok_where_the_whole_slash8_binds() -> None:
    check = check_ipv4_range()
    assert check.status == "ok", check.summary
    assert check.fix is None
    outcomes = check.facts["addresses"]
    assert isinstance(outcomes, list)
    assert [o["address"] for o in outcomes] == list(IPV4_SPREAD)
    assert all(o["reachable"] for o in outcomes)
    for address in IPV4_SPREAD:
        assert address in check.summary


def test_ipv4_range_warns_and_names_an_address_that_binds_but_cannot_be_reached(
    spare_loopback: Callable[[int], list[ipaddress.IPv4Address]],
) -> None:
    spare = str(spare_loopback(1)[0])
    check = check_ipv4_range(("127.0.0.1", spare, "127.255.255.255"))
    assert check.status == "warning"
    assert "127.255.255.255 (ENETUNREACH)" in check.summary
    assert spare in check.summary
    assert check.fix is not None
    assert "127.255.255.255" in check.fix
    assert "ifconfig" not in check.fix


def test_ipv6_loopback_is_ok_here() -> None:
    check = check_ipv6_loopback()
    assert check.status == "ok", check.summary
    assert check.facts["address"] == "::1"
    assert check.facts["reachable"] is True
    assert str(check.facts["connect_us"]) in check.summary


def test_localhost_with_the_real_resolver_is_loopback_only() -> None:
    check = check_localhost()
    expected = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    addresses = check.facts["addresses"]
    assert isinstance(addresses, list)
    assert set(addresses) == expected
    assert len(addresses) == len(set(addresses))
    assert check.status == "ok"
    for address in addresses:
        assert address in check.summary


def test_run_checks_returns_every_check_in_order_well_under_a_second(
    hosts: Path, proc_root: Path
) -> None:
    start = time.perf_counter()
    checks = run_checks(hosts_path=hosts, proc_root=proc_root)
    elapsed = time.perf_counter() - start
    assert [c.name for c in checks] == NAMES
    assert elapsed < 0.5
    assert overall(checks) == "ok", [c.summary for c in checks if c.status != "ok"]
    for check in checks:
        assert (check.fix is None) == (check.status == "ok")
        assert json.loads(json.dumps(check.to_json()))["name"] == check.name


# --- a loopback that looks like macOS, inside a private network namespace ------------------


def ipv4_code(platform: str) -> str:
    """Python that prints check_ipv4_range(platform=platform) as JSON."""
    return (
        "import json; from sandbox.doctor import check_ipv4_range as c; "
        f"print(json.dumps(c(platform={platform!r}).to_json()))"
    )


@pytest.mark.netns
@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux", "`sudo ip addr add 127.0.0.1/8 dev lo`"),
        ("darwin", "`sudo ifconfig lo0 alias 127.0.0.2 up; sudo ifconfig lo0 alias 127.1.2.3 up"),
    ],
)
def test_ipv4_range_is_a_problem_when_only_127_0_0_1_exists(platform: str, expected: str) -> None:
    check = netns_json(ipv4_code(platform), setup=MACOS_LIKE)
    assert check["status"] == "problem"
    assert "Only 127.0.0.1 works" in check["summary"]
    assert "EADDRNOTAVAIL" in check["summary"]
    for address in IPV4_SPREAD[1:]:
        assert address in check["summary"]
    assert expected in check["fix"]
    if platform == "darwin":
        assert "127.254.254.254" in check["fix"]
        assert "do not survive a reboot" in check["fix"]
    errnos = {o["address"]: o.get("errno") for o in check["facts"]["addresses"]}
    assert errnos == {"127.0.0.1": None} | dict.fromkeys(IPV4_SPREAD[1:], "EADDRNOTAVAIL")


@pytest.mark.netns
def test_ipv4_range_warns_on_a_mix_and_lists_what_failed() -> None:
    setup = f"{MACOS_LIKE} && ip addr add 127.0.0.2/32 dev lo"
    check = netns_json(ipv4_code("darwin"), setup=setup)
    assert check["status"] == "warning"
    assert "127.1.2.3 (EADDRNOTAVAIL)" in check["summary"]
    assert "these worked: 127.0.0.1, 127.0.0.2." in check["summary"]
    assert "alias 127.1.2.3 up" in check["fix"]
    assert "alias 127.0.0.2 up" not in check["fix"]


@pytest.mark.netns
def test_ipv4_range_is_a_problem_when_even_127_0_0_1_is_gone() -> None:
    setup = "ip link set lo up && ip addr del 127.0.0.1/8 dev lo"
    check = netns_json(ipv4_code("linux"), setup=setup)
    assert check["status"] == "problem"
    assert "Even 127.0.0.1 failed" in check["summary"]
    assert "sudo ip link set lo up" in check["fix"]


@pytest.mark.netns
def test_ipv6_loopback_warns_with_the_errno_when_1_is_missing() -> None:
    code = (
        "import json; from sandbox.doctor import check_ipv6_loopback as c; "
        "print(json.dumps(c().to_json()))"
    )
    check = netns_json(code, setup="ip link set lo up && ip -6 addr del ::1/128 dev lo")
    assert check["status"] == "warning"
    assert "EADDRNOTAVAIL" in check["summary"]
    assert "disable_ipv6" in check["fix"]
    assert check["facts"]["bound"] is False


# --- localhost, through the resolver seam --------------------------------------------------


def test_localhost_ipv4_only_is_ok_and_says_1_is_not_reached() -> None:
    check = check_localhost(fixed(["127.0.0.1"]))
    assert check.status == "ok"
    assert check.facts["addresses"] == ["127.0.0.1"]
    assert "127.0.0.1 only" in check.summary
    assert "::1" in check.summary


def test_localhost_both_families_is_ok_and_explains_the_order() -> None:
    check = check_localhost(fixed(["::1", "127.0.0.1", "::1", "127.0.0.1"]))
    assert check.status == "ok"
    assert check.facts["addresses"] == ["::1", "127.0.0.1"]
    assert "::1 then 127.0.0.1" in check.summary
    assert "connection refused" in check.summary


def test_localhost_missing_is_a_warning_that_names_the_hosts_file(tmp_path: Path) -> None:
    check = check_localhost(fixed([]), hosts_path=tmp_path / "hosts")
    assert check.status == "warning"
    assert "does not resolve" in check.summary
    assert check.fix is not None
    assert str(tmp_path / "hosts") in check.fix


def test_localhost_resolver_error_is_a_warning_with_the_error() -> None:
    def fail(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    check = check_localhost(fail)
    assert check.status == "warning"
    assert "Name or service not known" in check.summary
    assert check.facts["addresses"] == []


def test_localhost_non_loopback_is_a_problem_naming_the_address() -> None:
    check = check_localhost(fixed(["10.0.0.5"]))
    assert check.status == "problem"
    assert "10.0.0.5 is not loopback" in check.summary
    assert check.fix is not None
    assert "10.0.0.5" in check.fix


def test_localhost_slow_resolver_gives_up_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor, "RESOLVE_TIMEOUT", 0.05)
    release = threading.Event()

    def stuck(host: str) -> list[str]:
        release.wait(5)
        return ["127.0.0.1"]

    try:
        start = time.perf_counter()
        check = check_localhost(stuck)
        assert time.perf_counter() - start < 1
    finally:
        release.set()
    assert check.status == "warning"
    assert "no answer within 0.05 s" in check.summary


def test_localhost_resolver_bug_is_raised_not_reported() -> None:
    def broken(host: str) -> list[str]:
        raise KeyError(host)

    with pytest.raises(KeyError):
        check_localhost(broken)


# --- the hosts file ------------------------------------------------------------------------


def test_hosts_file_lists_active_localhost_lines_with_numbers(hosts: Path) -> None:
    check = check_hosts_file(hosts)
    assert check.status == "ok"
    assert check.facts["lines"] == [
        {"line": 2, "text": "127.0.0.1\tlocalhost"},
        {"line": 5, "text": "::1 ip6-localhost ip6-loopback"},
    ]
    assert "line 2: `127.0.0.1\tlocalhost`" in check.summary
    assert "line 5" in check.summary
    assert "commented" not in check.summary


def test_hosts_file_without_localhost_is_ok_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("10.1.2.3 build-box\n")
    check = check_hosts_file(path)
    assert check.status == "ok"
    assert check.facts["lines"] == []
    assert "No active line" in check.summary


@pytest.mark.parametrize(("kind", "errno_name"), [("missing", "ENOENT"), ("dir", "EISDIR")])
def test_hosts_file_unreadable_is_a_warning(tmp_path: Path, kind: str, errno_name: str) -> None:
    path = tmp_path / "hosts"
    if kind == "dir":
        path.mkdir()
    check = check_hosts_file(path)
    assert check.status == "warning"
    assert errno_name in check.summary
    assert check.fix is not None
    assert str(path) in check.fix


# --- /proc/sys, through the proc_root seam -------------------------------------------------


@pytest.mark.parametrize("start", [1024, 80, 0])
def test_unprivileged_ports_reports_the_number_and_root(tmp_path: Path, start: int) -> None:
    root = write_proc(tmp_path, {"net/ipv4/ip_unprivileged_port_start": f"{start}\n"})
    check = check_unprivileged_ports(root)
    assert check.status == "ok"
    assert check.facts["value"] == start
    assert check.facts["root"] is (os.geteuid() == 0)
    assert str(start) in check.summary
    if start:
        assert ("runs as root" if os.geteuid() == 0 else "is not root") in check.summary


@pytest.mark.parametrize("content", [None, "lots\n", "1 2\n"])
def test_unprivileged_ports_unreadable_falls_back_to_1024(
    tmp_path: Path, content: str | None
) -> None:
    files = {} if content is None else {"net/ipv4/ip_unprivileged_port_start": content}
    check = check_unprivileged_ports(write_proc(tmp_path, files))
    assert check.status == "warning"
    assert "1024" in check.summary
    assert check.fix is not None


def test_ephemeral_range_names_both_ends(tmp_path: Path) -> None:
    root = write_proc(tmp_path, {"net/ipv4/ip_local_port_range": "40000\t50000\n"})
    check = check_ephemeral_range(root)
    assert check.status == "ok"
    assert (check.facts["low"], check.facts["high"]) == (40000, 50000)
    assert "40000–50000" in check.summary
    assert "below 40000" in check.summary


def test_ephemeral_range_unreadable_is_a_warning(tmp_path: Path) -> None:
    check = check_ephemeral_range(write_proc(tmp_path, {"net/ipv4/ip_local_port_range": "1\n"}))
    assert check.status == "warning"
    assert "expected 2" in check.summary


@pytest.mark.parametrize(("value", "phrase"), [(0, "dual-stack"), (1, "takes only IPv6")])
def test_bindv6only_is_ok_either_way_and_explains(tmp_path: Path, value: int, phrase: str) -> None:
    check = check_bindv6only(write_proc(tmp_path, {"net/ipv6/bindv6only": f"{value}\n"}))
    assert check.status == "ok"
    assert check.facts["value"] == value
    assert f"bindv6only = {value}" in check.summary
    assert phrase in check.summary


def test_bindv6only_unreadable_is_a_warning(tmp_path: Path) -> None:
    check = check_bindv6only(tmp_path)
    assert check.status == "warning"
    assert "ENOENT" in check.summary


def test_run_checks_reads_proc_through_the_seam(tmp_path: Path, hosts: Path) -> None:
    root = write_proc(
        tmp_path / "sys",
        {
            "net/ipv4/ip_unprivileged_port_start": "500\n",
            "net/ipv4/ip_local_port_range": "20000 30000\n",
        },
    )
    checks = {c.name: c for c in run_checks(hosts_path=hosts, proc_root=root)}
    assert checks["unprivileged-ports"].facts["value"] == 500
    assert checks["ephemeral-range"].facts["low"] == 20000
    assert checks["bindv6only"].status == "warning"
    assert overall(checks.values()) == "warning"


# --- the verdict ---------------------------------------------------------------------------


def make(status: doctor.Status) -> Check:
    return Check("x", "x", status, "s", None if status == "ok" else "f", {})


def test_overall_is_the_worst_status() -> None:
    assert overall([]) == "ok"
    assert overall([make("ok"), make("ok")]) == "ok"
    assert overall([make("ok"), make("warning")]) == "warning"
    assert overall(make(s) for s in ("problem", "warning", "ok")) == "problem"


def test_to_json_has_every_field_and_copies_the_facts() -> None:
    facts: dict[str, object] = {"n": 1}
    check = Check("n", "t", "warning", "s", "f", facts)
    data = check.to_json()
    assert data == {
        "name": "n",
        "title": "t",
        "status": "warning",
        "summary": "s",
        "fix": "f",
        "facts": {"n": 1},
    }
    assert data["facts"] is not facts
