"""The socket table's data types: pure, psutil-free, and short quotes of command lines."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from sandbox.net.listeners import COMMAND_CHARS, Listener, Owner, command_text

REDIS = "redis-server 127.0.0.1:6379"
NGINX = "nginx: master process /usr/sbin/nginx"


@pytest.mark.parametrize(
    ("argv", "name", "expected"),
    [
        # redis, nginx and postgres write their title over argv and leave empty strings
        (["redis-server 127.0.0.1:6379", *[""] * 40], "redis-server", REDIS),
        (["nginx: master process /usr/sbin/nginx", "", ""], "nginx", NGINX),
        (["postgres: checkpointer ", *[""] * 12], "postgres", "postgres: checkpointer "),
        (["", "", ""], "postgres", "postgres"),
        ([], "sshd", "sshd"),
        (None, None, None),
        (["python3", "-m", "http.server", "--bind", "127.0.0.1"], "python3",
         "python3 -m http.server --bind 127.0.0.1"),
        (["sh", "-c", "echo hi"], "sh", "sh -c 'echo hi'"),
    ],
)  # fmt: skip
def test_command_text(argv: list[str] | None, name: str | None, expected: str | None) -> None:
    assert command_text(argv, name) == expected


def test_a_long_command_line_is_capped() -> None:
    text = command_text(["java", *(f"-Dprop{i}=value{i}" for i in range(500))], "java")
    assert text is not None
    assert len(text) == COMMAND_CHARS
    assert text.endswith("…")


def test_describe_quotes_at_most_the_cap() -> None:
    owner = Owner(4127, "java", "java " + "x" * 5000, "me")
    sentence = owner.describe()
    assert len(sentence) < COMMAND_CHARS + 40
    assert sentence.startswith('pid 4127 "java xx')
    assert sentence.endswith('…" (user me)')


def test_listener_is_plain_data() -> None:
    entry = Listener(ipaddress.ip_address("127.0.0.2"), 8080, "tcp", None)
    assert (entry.hostport, entry.is_loopback, entry.is_wildcard) == ("127.0.0.2:8080", True, False)


def test_the_planner_and_the_conflict_rules_do_not_import_psutil() -> None:
    code = (
        "import sys; import sandbox.plan, sandbox.net.conflicts, sandbox.net.listeners; "
        "print('psutil' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
