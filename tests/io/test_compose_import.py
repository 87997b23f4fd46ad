"""The compose importer: samples against golden profiles, the report, interpolation, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.errors import SourceError
from sandbox.io.importers.compose import import_compose
from sandbox.io.importers.compose_health import compose_seconds, readiness
from sandbox.io.importers.compose_interpolate import Interpolator, parse_env_file
from sandbox.io.report import ImportResult, LossKind
from sandbox.profile.loader import load_profile_data

SAMPLES = Path(__file__).parent / "samples" / "compose"
CASES = {
    "shop": ("docker-compose.yml", {}),
    "blog": ("compose.yaml", {"DEBUG": "yes"}),
    "django": ("docker-compose.yml", {}),
    "runnable": ("docker-compose.yml", {"PYTHON": "python3", "ECHO_SERVER": "echo_server.py"}),
}


def _import(name: str) -> ImportResult:
    file, env = CASES[name]
    return import_compose(SAMPLES / name / file, env=env)


def _losses(result: ImportResult) -> dict[str, list[tuple[LossKind, str]]]:
    out: dict[str, list[tuple[LossKind, str]]] = {}
    for loss in result.losses:
        out.setdefault(loss.location.split("#", 1)[1], []).append((loss.kind, loss.what))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_matches_its_golden_profile_and_validates(name: str) -> None:
    result = _import(name)
    expected = yaml.safe_load((SAMPLES / name / "expected.yaml").read_text())
    assert result.profile == expected
    profile = load_profile_data(result.profile)
    assert profile.name == name


def test_seven_service_app_maps_each_part() -> None:
    result = _import("shop")
    services = result.profile["services"]
    assert list(services) == [
        "web", "api", "worker-1", "worker-2", "migrate", "db", "cache", "payments",
    ]  # fmt: skip
    api = services["api"]
    # .env beside the file gives the password; ${POSTGRES_USER:-shop} its default.
    assert api["env"]["DATABASE_URL"] == (
        "postgres://shop:example@{services.db.address}:{services.db.port}/shop"
    )
    assert api["env"]["SESSION_SECRET"] == "not-a-secret"  # from env_file, quotes removed
    assert api["env"]["FEATURE_FLAGS"] == "checkout,wishlist"  # inline comment removed
    assert api["env"]["PORT"] == "{port}"
    assert api["run"] == "gunicorn app:create_app() --bind {address}:{port} --workers 2"
    assert api["ready"] == {"http": "/health", "timeout": "50s"}  # 20s + 3 x 10s
    assert api["depends_on"] == ["db", "cache", "migrate"]
    assert services["web"]["env"]["PUBLIC_PRICE"] == "$9.99"  # $$ is a literal $
    assert services["web"]["port"] == 8080  # the published port
    assert services["db"]["ready"] == {"tcp": True, "timeout": "20s"}
    assert services["migrate"]["job"] is True  # waited on with service_completed_successfully
    assert services["cache"]["run"].startswith("redis-server --bind {address} --port {port}")
    assert services["worker-1"]["max_restarts"] == 5
    assert services["worker-1"]["stop_timeout"] == "90s"
    assert services["payments"]["stop_signal"] == "SIGINT"


def test_report_names_every_loss_with_its_place() -> None:
    losses = _losses(_import("shop"))
    kinds = {where: [k for k, _ in found] for where, found in losses.items()}
    assert kinds["/volumes"] == [LossKind.DROPPED]
    assert kinds["/services/web/volumes"] == [LossKind.DROPPED]
    assert kinds["/services/web/build"] == [LossKind.DROPPED]
    assert kinds["/services/worker/deploy/resources"] == [LossKind.DROPPED]
    assert kinds["/services/db/image"] == [LossKind.DROPPED]
    # Waited on with service_completed_successfully: a one-shot job, exactly.
    assert "/services/api/depends_on/migrate" not in losses
    assert _import("shop").profile["services"]["migrate"]["job"] is True
    needs = [w for where, found in losses.items() for _, w in found if "needs a local program" in w]
    programs = {w.split("`")[1] for w in needs}
    assert {"node", "gunicorn", "celery", "python", "db", "payments"} <= programs
    # replicas repeat their service's losses: each is reported once
    assert len(result_losses := _import("shop").losses) == len(set(result_losses))


def test_image_only_service_fails_loudly_until_edited() -> None:
    run = _import("shop").profile["services"]["db"]["run"]
    assert run.startswith("sh -c ")
    assert "needs a local program" in run
    assert run.endswith("exit 127'")


def test_blog_sample_edges() -> None:
    result = _import("blog")
    services = result.profile["services"]
    assert "metrics" not in services  # 0 replicas
    assert "proxy-front" in services  # Proxy.Front renamed
    app = services["app"]
    assert app["env"]["SEARCH_HOST"] == "{services.search.address}"
    assert app["env"]["SMTP_SERVER"] == "{services.mail.address}:{services.mail.port}"
    assert app["env"]["DEBUG"] == "1"  # ${DEBUG:+1}
    assert app["env"]["TEMPLATE"] == "{{title}}"  # braces kept literal
    assert "SENTRY_DSN" not in app["env"]
    assert app["run"] == "./docker-entrypoint.sh flask run --host={address} --port={port}"
    assert services["mail"]["run"].endswith("-api-bind-addr {address}:8025")
    losses = _losses(result)
    assert "udp" in losses["/services/Proxy.Front/ports/2"][0][1]
    assert losses["/services/app/environment/SENTRY_DSN"][0][0] is LossKind.DROPPED
    # Its python check names localhost: it runs here, pointed at the service's address.
    assert losses["/services/app/healthcheck"][0][0] is LossKind.APPROXIMATED
    assert "{address}" in services["app"]["ready"]["command"]


def test_django_sample_edges() -> None:
    result = _import("django")
    services = result.profile["services"]
    site = services["site"]
    # a value that is a service's name is a host only under a host-like variable name
    assert site["env"]["DATABASE_HOST"] == "{services.mysql.address}"
    assert services["mysql"]["env"]["MYSQL_DATABASE"] == "site"
    assert site["env"]["SECRET_KEY"] == "dev-only-{{not-secret}}"  # from the second env file
    assert site["run"].endswith("gunicorn site.wsgi -b {address}:{port}'")
    assert site["port"] == 8000  # from expose
    assert services["memcached"]["run"] == "memcached -l {address} -p {port} -m 64"
    losses = _losses(result)
    assert "SIGRTMIN+3" in losses["/services/mysql/stop_signal"][0][1]
    assert losses["/services/nginx/ports/0/mode"][0][0] is LossKind.DROPPED
    assert losses["/services/site/links"][0][0] is LossKind.DROPPED


def test_environment_wins_over_dot_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=1111\nHOST=127.0.0.9\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    command: serve ${HOST}:${PORT}\n    ports: ['${PORT}:80']\n"
    )
    result = import_compose(tmp_path / "compose.yaml", env={"PORT": "2222"})
    service = result.profile["services"]["a"]
    assert service["port"] == 2222
    assert service["run"] == "serve 127.0.0.9:2222"


def test_a_port_is_learnt_from_references_not_from_image_tags(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  redis: {image: 'redis:7'}\n"
        "  queue: {image: 'queue:3'}\n"
        "  web:\n"  # named after the others: their image tags come first in the text
        "    command: app --queue queue:5672\n"
        "    environment: {REDIS_URL: 'redis://redis:6379/0'}\n"
    )
    services = import_compose(tmp_path / "compose.yaml", env={}).profile["services"]
    assert services["redis"]["port"] == 6379
    assert services["queue"]["port"] == 5672
    assert services["web"]["run"] == "app --queue {services.queue.address}:{services.queue.port}"
    assert services["web"]["env"]["REDIS_URL"] == (
        "redis://{services.redis.address}:{services.redis.port}/0"
    )


def test_required_variable_missing_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text("services:\n  a:\n    command: run ${TOKEN:?give the API token}\n")
    with pytest.raises(SourceError, match="TOKEN is not set: give the API token"):
        import_compose(source, env={})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- just a list\n", "no `services` mapping"),
        ("services: {}\n", "defines no services"),
        ("services: [\n", "not valid YAML"),
    ],
)
def test_not_a_compose_file(tmp_path: Path, text: str, problem: str) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text(text)
    with pytest.raises(SourceError, match=problem):
        import_compose(source, env={})


def test_wrong_shapes_are_all_named_at_once(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text(
        "services:\n"
        "  a: {ports: '8080:80', depends_on: [1], healthcheck: {test: 5}}\n"
        "  b: {deploy: {replicas: -1}, command: [run, {x: 1}]}\n"
        "  'bad name': {}\n"
    )
    with pytest.raises(SourceError, match=r"not a valid compose file \(6 problems\)") as caught:
        import_compose(source, env={})
    text = str(caught.value)
    for where in (
        "a/ports:",
        "a/depends_on/0:",
        "a/healthcheck/test:",
        "b/deploy/replicas:",
        "b/command/1:",
        "services/bad name:",
    ):
        assert where in text


def test_self_dependency_is_dropped_and_names_are_kept_apart(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text(
        "services:\n"
        "  a.b: {command: x, depends_on: [a.b]}\n"
        "  a-b: {command: y, depends_on: [a.b]}\n"
    )
    result = import_compose(source, env={})
    assert list(result.profile["services"]) == ["a-b", "a-b-2"]
    assert result.profile["services"]["a-b-2"]["depends_on"] == ["a-b"]
    assert "depends_on" not in result.profile["services"]["a-b"]
    assert _losses(result)["/services/a.b/depends_on/a.b"][0][0] is LossKind.DROPPED


def test_a_dependency_cycle_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text(
        "services:\n  a: {command: x, depends_on: [b]}\n  b: {command: y, depends_on: [a]}\n"
    )
    with pytest.raises(SourceError, match="cannot become a valid profile") as caught:
        import_compose(source, env={})
    assert "cycle" in str(caught.value)


def test_missing_required_env_file(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text("services:\n  a:\n    command: x\n    env_file: nowhere.env\n")
    with pytest.raises(SourceError, match=r"nowhere\.env does not exist"):
        import_compose(source, env={})


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("$A-x", {"A": "1"}, "1-x"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+r}", {"A": "1"}, "r"),
        ("${A+r}", {}, ""),
        ("${A:-${B:-inner}}", {}, "inner"),
        ("$$A and $${B}", {"A": "1"}, "$A and ${B}"),
        ("cost: 5$", {}, "cost: 5$"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert Interpolator(env)(text, "here") == expected


def test_interpolation_remembers_unset_names() -> None:
    interpolate = Interpolator({})
    assert interpolate("a${NOPE}b", "here") == "ab"
    assert interpolate.unset == {"NOPE"}


@pytest.mark.parametrize("text", ["${", "${A", "${1A}", "${A#x}"])
def test_interpolation_errors_name_the_place(text: str) -> None:
    with pytest.raises(SourceError, match=r"^here: "):
        Interpolator({"A": "1"})(text, "here")


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("# c\n\nA=1\nexport B = two words \nC=\"q\\nr\"\nD='$x'\nE\n")
    assert parse_env_file(path) == {"A": "1", "B": "two words", "C": "q\nr", "D": "$x", "E": ""}
    path.write_text("A=1\n= nothing\n")
    with pytest.raises(SourceError, match=r"x\.env:2"):
        parse_env_file(path)


@pytest.mark.parametrize(
    ("check", "ready"),
    [
        ({"test": ["CMD", "curl", "-f", "http://localhost:8000/health?deep=1"]},
         {"http": "/health?deep=1", "timeout": "90s"}),
        ({"test": "wget -q 127.0.0.1:80", "interval": "1m", "retries": 2},
         {"http": "/", "timeout": "120s"}),
        ({"test": ["CMD", "redis-cli", "ping"], "interval": "500ms", "retries": 1},
         {"tcp": True, "timeout": "1s"}),
        ({"test": ["CMD", "curl", "http://example.com/"]}, None),
        ({"test": ["CMD", "/bin/check"]}, None),
        ({"test": ["NONE"]}, None),
        ({"test": ["CMD", "curl", "localhost"], "disable": True}, None),
    ],
)  # fmt: skip
def test_healthcheck_to_ready(check: dict[str, Any], ready: dict[str, Any] | None) -> None:
    mapped = readiness(check)
    assert mapped.ready == ready
    assert mapped.loss  # every mapping is approximate or dropped, and says so


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m30s", 90.0), ("250ms", 0.25), ("2h", 7200.0), (5, 5.0), ("x", None)]
)
def test_compose_durations(text: object, seconds: float | None) -> None:
    assert compose_seconds(text) == seconds
