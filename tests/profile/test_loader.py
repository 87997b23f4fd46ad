"""Loading profiles: every refusal, with FILE:LINE:COL and field path, and finding them by name."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from sandbox.errors import ExitCode, ProfileError, ProfileNotFound
from sandbox.profile.loader import (
    bundled_dir,
    discover,
    find_profile,
    load_profile,
    load_profile_data,
    load_profile_text,
    profile_dirs,
)

SERVICE_KEYS = (
    "description, address, port, depends_on, ready, env, kind, routes, journal, vars, "
    "max_body, tls, headers, cors, pass_env, log_requests"
)


def problems(text: str, source: str = "p.yaml") -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(textwrap.dedent(text), source)
    assert info.value.exit_code == ExitCode.INVALID_PROFILE
    assert info.value.source == source
    return info.value.problems


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one(name: str, description: str = "x") -> str:
    return f"name: {name}\ndescription: {description}\nservices:\n  a: {{kind: http}}\n"


# -- valid input -----------------------------------------------------------------------------------


def test_a_valid_profile_loads_with_its_values() -> None:
    profile = load_profile_text(
        """\
        name: demo
        services:
          api: {kind: http, address: 127.0.0.9, port: 8000, ready: {http: /h, timeout: 750ms}}
        """.replace("        ", "")
    )
    api = profile.services["api"]
    assert (api.kind, api.address, api.port) == ("http", "127.0.0.9", 8000)
    assert api.ready is not None
    assert api.ready.timeout == pytest.approx(0.75)
    assert profile.source is None


def test_a_loaded_file_remembers_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "sub", "x.yaml", one("x"))
    profile = load_profile("sub/x.yaml")
    assert profile.source == str(tmp_path / "sub" / "x.yaml")


def test_merge_keys_work_and_are_not_duplicates() -> None:
    profile = load_profile_text(
        textwrap.dedent(
            """\
            name: demo
            services:
              a: &base
                kind: http
                port: 8000
              b:
                <<: *base
                port: 8001
            """
        )
    )
    assert profile.services["b"].kind == "http"
    assert profile.services["b"].port == 8001


# -- pydantic errors, mapped to the YAML -----------------------------------------------------------


def test_a_bad_value_points_at_the_value() -> None:
    text = """\
        name: demo
        services:
          api:
            kind: http
            port: 70000
        """
    assert problems(text) == ["p.yaml:5:11 services.api.port: must be at most 65535"]


def test_an_unknown_key_points_at_the_key_and_suggests_the_close_one() -> None:
    text = """\
        name: demo
        services:
          api:
            kind: http
            prot: 8000
        """
    assert problems(text) == [
        f"p.yaml:5:5 services.api.prot: unknown key (did you mean `port`? allowed: {SERVICE_KEYS})"
    ]


def test_an_unknown_key_without_a_close_match_lists_the_allowed_ones() -> None:
    assert problems("name: demo\nservices: {a: {kind: http}}\nzzz: 1\n") == [
        "p.yaml:3:1 zzz: unknown key (allowed: name, description, pool, services)"
    ]


def test_a_key_of_another_kind_says_which_kind_has_it() -> None:
    [problem] = problems("name: demo\nservices:\n  api:\n    kind: http\n    run: x\n")
    assert problem.startswith("p.yaml:5:5 services.api.run: unknown key here (`run` is for")
    assert "command services" in problem


def test_an_unknown_key_deep_inside_names_the_right_model() -> None:
    text = """\
        name: demo
        services:
          api:
            kind: http
            routes:
              - path: /
                response: {staus: 201}
        """
    [problem] = problems(text)
    assert problem.startswith("p.yaml:7:20 services.api.routes.0.response.staus: unknown key")
    assert "did you mean `status`?" in problem


def test_an_unknown_kind_lists_the_kinds() -> None:
    [problem] = problems("name: demo\nservices:\n  api:\n    kind: htp\n")
    assert problem.startswith("p.yaml:4:11 services.api.kind: unknown kind `htp`:")
    for kind in ("http", "tcp", "command"):
        assert kind in problem


def test_a_missing_kind_points_at_the_service() -> None:
    [problem] = problems("name: demo\nservices:\n  api:\n    port: 80\n")
    assert problem.startswith("p.yaml:4:5 services.api.kind: missing required field")


def test_a_missing_field_points_at_its_parent_mapping() -> None:
    text = """\
        name: demo
        services:
          job:
            kind: command
            port: 9000
        """
    assert problems(text) == ["p.yaml:4:5 services.job.run: missing required field"]
    assert problems("services: {a: {kind: http}}\n") == ["p.yaml:1:1 name: missing required field"]


def test_a_validator_message_reads_without_pydantic_prefix() -> None:
    [problem] = problems("name: demo\nservices:\n  a: {kind: http, address: 0.0.0.0}\n")
    assert problem.startswith("p.yaml:3:28 services.a.address: 0.0.0.0 is a wildcard address")
    assert "Value error" not in problem


def test_a_number_where_text_is_needed_says_to_quote_it() -> None:
    text = "name: demo\nservices:\n  a:\n    kind: tcp\n    env: {PORT: 8000, on: 1}\n"
    assert problems(text) == [
        "p.yaml:5:17 services.a.env.PORT: must be text, but YAML reads 8000 as a number: "
        'quote it, "8000"',
        "p.yaml:5:23 services.a.env.on: must be text, but YAML reads on as true/false: "
        'quote it, "on"',
        'p.yaml:5:27 services.a.env.on: must be text, but YAML reads 1 as a number: quote it, "1"',
    ]


def test_a_choice_lists_the_choices() -> None:
    text = "name: demo\nservices:\n  a:\n    kind: tcp\n    tcp: {default: shout}\n"
    assert problems(text) == [
        "p.yaml:5:20 services.a.tcp.default: must be one of echo, silent or close (got shout)"
    ]


def test_a_port_that_is_neither_number_nor_auto_is_one_problem() -> None:
    text = "name: demo\nservices:\n  a: {kind: tcp, port: http}\n"
    assert problems(text) == [
        "p.yaml:3:24 services.a.port: must be a whole number, or `auto` (got http)"
    ]


def test_a_bad_name_and_a_bad_service_name() -> None:
    assert problems("name: Demo\nservices:\n  Web Site: {kind: http}\n") == [
        "p.yaml:1:7 name: 'Demo' is not a valid name: a lowercase letter, then a-z, 0-9, - or _",
        "p.yaml:3:3 services.Web Site: 'Web Site' is not a valid name: a lowercase letter, "
        "then a-z, 0-9, - or _",
    ]


def test_a_pool_with_host_bits_suggests_the_network() -> None:
    assert problems("name: demo\npool: 127.20.0.1/16\nservices: {a: {kind: http}}\n") == [
        "p.yaml:2:7 pool: 127.20.0.1/16 has host bits set: write the network, 127.20.0.0/16"
    ]


def test_no_services_and_a_service_that_is_not_a_mapping() -> None:
    assert problems("name: demo\nservices: {}\n") == [
        "p.yaml:2:11 services: must name at least one service"
    ]
    [problem] = problems("name: demo\nservices:\n  a: web\n")
    assert problem.startswith("p.yaml:3:6 services.a: must be a mapping")


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = """\
        name: demo
        services:
          api:
            kind: http
            port: 0
            depends: [db]
          db:
            kind: tcp
            address: 10.0.0.1
        """
    found = problems(text)
    assert len(found) == 3
    assert [p.split(" ")[0] for p in found] == ["p.yaml:5:11", "p.yaml:6:5", "p.yaml:9:14"]
    assert found[0] == "p.yaml:5:11 services.api.port: must be at least 1"
    assert "not a loopback address" in found[2]


# -- refusals before pydantic ----------------------------------------------------------------------


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = "name: demo\nservices:\n  a:\n    kind: http\n    port: 80\n    port: 81\n"
    assert problems(text) == [
        "p.yaml:6:5 services.a.port: duplicate key (also on line 5); YAML would keep only this one"
    ]


def test_duplicate_keys_come_with_the_other_problems() -> None:
    text = "name: demo\nname: demo\nservices:\n  a: {kind: http, port: -1}\n"
    found = problems(text)
    assert [p.split(" ")[0] for p in found] == ["p.yaml:2:1", "p.yaml:4:25"]


def test_a_yaml_syntax_error_has_its_position() -> None:
    assert problems("name: demo\nservices: [a, b\n") == [
        "p.yaml:3:1 YAML syntax: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at 2:11)"
    ]
    [problem] = problems("name: demo: x\n")
    assert problem.startswith("p.yaml:1:11 YAML syntax: a `:` where none can be")


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    assert problems(text) == [
        "p.yaml:1:1 the file is empty: a profile needs at least `name:` and `services:`"
    ]


@pytest.mark.parametrize(("text", "what"), [("- a\n", "a list"), ("just text\n", "a single")])
def test_a_top_level_that_is_not_a_mapping_is_refused(text: str, what: str) -> None:
    [problem] = problems(text)
    assert problem.startswith(
        f"p.yaml:1:1 the top level must be a mapping with `name:` and `services:`, not {what}"
    )


def test_a_tab_is_refused_with_its_position() -> None:
    assert problems("name: demo\nservices:\n\ta: {kind: http}\n") == [
        "p.yaml:3:1 a tab character: YAML indents with spaces only, so replace the tab with spaces"
    ]


def test_a_control_character_is_refused() -> None:
    assert problems('name: demo\ndescription: "a\x07b"\n') == [
        "p.yaml:2:16 character U+0007 is not allowed in YAML: "
        "write it as an escape in double quotes"
    ]


def test_a_second_document_is_refused() -> None:
    [problem] = problems("name: demo\n---\nname: other\n")
    assert problem.startswith("p.yaml:2:1 a second YAML document")


def test_a_python_tag_is_refused_not_run() -> None:
    [problem] = problems("name: !!python/object/apply:os.system [echo hi]\n")
    assert problem.startswith("p.yaml:1:7 YAML syntax: could not determine a constructor")


def test_a_recursive_alias_and_deep_nesting_are_refused() -> None:
    [problem] = problems("name: &x [*x]\n")
    assert problem.startswith("p.yaml:1:7 YAML syntax: an alias refers to a node that contains it")
    assert problems("name: " + "[" * 5000 + "]" * 5000) == [
        "p.yaml nests mappings and lists too deeply"
    ]


def test_a_collection_as_a_key_is_refused() -> None:
    [*_, problem] = problems("? [a, b]\n: 1\n")
    assert problem == "p.yaml:1:3 a key must be plain text, not a collection"


def test_a_file_that_is_not_utf8_is_refused_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: demo\ndescription: caf\xe9\n")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.problems == [
        f"{path}:2:17 the file is not UTF-8 text (byte 0xe9): save it as UTF-8"
    ]


def test_a_missing_file_or_a_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ProfileNotFound, match="There is no profile file at") as info:
        load_profile(tmp_path / "nope.yaml")
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(ProfileNotFound, match="is a folder"):
        load_profile(tmp_path)


def test_a_folder_in_place_of_the_file_is_a_usage_error(tmp_path: Path) -> None:
    folder = tmp_path / "x.yaml"
    folder.mkdir()
    with pytest.raises(ProfileNotFound, match="is a folder, not a profile file"):
        load_profile(folder)


# -- semantic checks come through the loader with positions ----------------------------------------


def test_a_check_problem_points_at_the_field() -> None:
    text = """\
        name: demo
        services:
          web:
            kind: http
            depends_on: [api, apx]
          api: {kind: http}
        """
    assert problems(text) == [
        'p.yaml:5:23 services.web.depends_on.1: unknown service "apx" (services: api)'
    ]


def test_a_cycle_is_reported_through_the_loader() -> None:
    text = """\
        name: demo
        services:
          a: {kind: http, depends_on: [b]}
          b: {kind: http, depends_on: [a]}
        """
    assert problems(text) == ["p.yaml:3:32 services.a.depends_on.0: dependency cycle: a -> b -> a"]


# -- in-memory dicts ------------------------------------------------------------------------------


def test_a_dict_loads() -> None:
    profile = load_profile_data({"name": "d", "services": {"a": {"kind": "tcp", "port": 7}}})
    assert profile.services["a"].port == 7


def test_dict_problems_have_paths_but_no_positions() -> None:
    data = {
        "name": "d",
        "services": {"a": {"kind": "http", "port": 0, "prot": 1}, "b": {"kind": "x"}},
    }
    with pytest.raises(ProfileError) as info:
        load_profile_data(data)
    assert info.value.problems[0] == "<dict> services.a.port: must be at least 1"
    assert info.value.problems[1].startswith("<dict> services.a.prot: unknown key (did you mean")
    assert info.value.problems[2].startswith("<dict> services.b.kind: unknown kind `x`")


def test_a_dict_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile_data([1, 2], "mine")  # type: ignore[arg-type]
    assert info.value.problems == [
        "mine the top level must be a mapping with `name:` and `services:`, not a list"
    ]


# -- finding profiles by name ----------------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A working folder with ./profiles, and two $SANDBOX_PROFILE_PATH folders."""
    monkeypatch.chdir(tmp_path)
    local, first, second = tmp_path / "profiles", tmp_path / "env1", tmp_path / "env2"
    for folder in (local, first, second):
        folder.mkdir()
    monkeypatch.setenv("SANDBOX_PROFILE_PATH", os.pathsep.join([str(first), "", str(second)]))
    return local, first, second


def test_search_order_is_local_then_path_then_bundled(places: tuple[Path, Path, Path]) -> None:
    local, first, second = places
    assert profile_dirs() == [
        (Path("profiles"), "local"),
        (first, "path"),
        (second, "path"),
        (bundled_dir(), "bundled"),
    ]
    write(second, "web-db-api.yaml", one("second", "from env2"))
    assert load_profile("web-db-api").description == "from env2"
    write(first, "web-db-api.yaml", one("first", "from env1"))
    assert load_profile("web-db-api").description == "from env1"
    write(local, "web-db-api.yaml", one("local", "from local"))
    assert load_profile("web-db-api").description == "from local"
    assert find_profile("web-db-api") == Path("profiles/web-db-api.yaml")


def test_a_bundled_profile_is_found_by_name(places: tuple[Path, Path, Path]) -> None:
    profile = load_profile("web-db-api")
    assert profile.source == str(bundled_dir() / "web-db-api.yaml")


def test_yaml_is_preferred_to_yml_in_one_folder(tmp_path: Path) -> None:
    write(tmp_path, "x.yml", one("x", "yml"))
    assert load_profile("x", search=[tmp_path]).description == "yml"
    write(tmp_path, "x.yaml", one("x", "yaml"))
    assert load_profile("x", search=[tmp_path]).description == "yaml"


def test_a_ref_is_a_path_when_it_looks_like_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "plain", one("plain"))
    write(tmp_path, "here.yaml", one("here"))
    write(tmp_path / "profiles", "here.yaml", one("shadow"))
    assert load_profile("plain", search=[]).name == "plain"  # an existing file
    assert load_profile("here.yaml", search=[]).name == "here"  # not looked up by name
    assert load_profile("here").name == "shadow"
    assert load_profile(tmp_path / "here.yaml").name == "here"


def test_not_found_names_every_place_and_suggests_the_listing(
    places: tuple[Path, Path, Path],
) -> None:
    _, first, second = places
    write(first, "web-bd-api.yaml", one("x"))
    with pytest.raises(ProfileNotFound) as info:
        load_profile("web-db-ap")
    message = info.value.message
    assert message.startswith('No profile named "web-db-ap": looked for web-db-ap.yaml and ')
    for folder in ("./profiles (local)", f"{first} (from $SANDBOX_PROFILE_PATH)", f"{second} ("):
        assert folder in message
    assert f"{bundled_dir()} (bundled)" in message
    assert info.value.hint is not None
    assert "`sandbox profiles`" in info.value.hint
    assert "did you mean `web-db-api`?" in info.value.hint


def test_a_folder_listed_twice_is_searched_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    dirs = profile_dirs([tmp_path / "real", tmp_path / "link", bundled_dir()])
    assert dirs == [(tmp_path / "real", "path"), (bundled_dir(), "bundled")]


# -- discovery -------------------------------------------------------------------------------------


def test_discover_lists_each_name_once_with_the_winner(places: tuple[Path, Path, Path]) -> None:
    local, first, second = places
    write(local, "mine.yaml", one("mine", "local one"))
    write(first, "mine.yaml", one("mine", "env one"))
    write(second, "web-db-api.yml", one("web", "shadows the bundled one"))
    write(second, "zeta.yaml", one("zeta"))
    found = {f.name: f for f in discover()}
    assert list(found) == sorted(found)
    assert found["mine"].origin == "local"
    assert found["mine"].description == "local one"
    assert found["mine"].shadows == (first / "mine.yaml",)
    assert found["web-db-api"].origin == "path"
    assert found["web-db-api"].shadows == (bundled_dir() / "web-db-api.yaml",)
    assert found["ipv6-pair"].origin == "bundled"
    assert found["ipv6-pair"].error is None
    assert found["zeta"].shadows == ()


def test_discover_lists_a_broken_profile_with_its_first_problem(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "name: broken\nservices:\n  a: {kind: http, port: 0, x: 1}\n")
    write(tmp_path, "syntax.yaml", "name: [\n")
    (tmp_path / "notes.txt").write_text("not a profile")
    found = {f.name: f for f in discover(search=[tmp_path])}
    assert set(found) == {"broken", "syntax"}
    broken = found["broken"].error
    assert broken == (
        f"{tmp_path / 'broken.yaml'}:3:25 services.a.port: must be at least 1 (and 1 more)"
    )
    assert found["syntax"].error is not None
    assert found["syntax"].error.startswith(f"{tmp_path / 'syntax.yaml'}:2:1 YAML syntax")
    assert found["broken"].origin == "path"


def test_discover_survives_missing_folders(tmp_path: Path) -> None:
    assert discover(search=[tmp_path / "nowhere", tmp_path]) == []
