from __future__ import annotations

from pathlib import Path

import pytest

from journeyc.compile.ir import CapRule, QuietHoursRule
from journeyc.config import (
    CHANNELS,
    DEFAULT_REACHABILITY,
    Config,
    ConfigError,
    ExpressionError,
    load_config,
    parse_expression,
)
from journeyc.lang import ast


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journeyc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    prefix = f"{path}: "
    lines = str(info.value).splitlines()
    assert all(line.startswith(prefix) for line in lines)
    return [line.removeprefix(prefix) for line in lines]


def test_defaults_without_a_file(tmp_path: Path) -> None:
    for config in (load_config(None), load_config(tmp_path / "missing.toml")):
        assert config.engine.timezone == "UTC"
        assert config.engine.global_cap is None
        assert config.engine.quiet_hours.rule is None
        assert config.store.path == Path("journeyc.db")
        assert config.channels == {}
        assert (config.server.host, config.server.port) == ("127.0.0.1", 8700)
        assert config.reachability == DEFAULT_REACHABILITY
        assert set(config.reachability) == set(CHANNELS)


def test_a_full_file(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[engine]
timezone = "Asia/Bangkok"

[engine.global_cap]
count = 3
per = "1d"

[engine.quiet_hours]
window = "22:00-08:00"
skip = true

[reachability]
push = "push_enabled == true and not push_muted"

[store]
path = "data/journeyc.db"

[channels.email]
provider = "smtp"
host = "smtp.example.com"
port = 587

[server]
port = 9000
write_key = "wk"
admin_token = "at"
""",
        )
    )
    assert config.engine.zone.key == "Asia/Bangkok"
    assert config.engine.global_cap is not None
    assert config.engine.global_cap.rule == CapRule(count=3, per=86400)
    assert config.engine.quiet_hours.rule == QuietHoursRule(start=22 * 60, end=8 * 60, skip=True)
    # an overridden channel replaces its default; the others keep theirs
    assert config.reachability["push"] == "push_enabled == true and not push_muted"
    assert config.reachability["email"] == DEFAULT_REACHABILITY["email"]
    assert isinstance(config.reachability_expr("push"), ast.Binary)
    # a relative store path is taken from the config file's folder
    assert config.store.path == tmp_path / "data" / "journeyc.db"
    email = config.channels["email"]
    assert email.provider == "smtp"
    assert email.options == {"host": "smtp.example.com", "port": 587}
    assert (config.server.port, config.server.write_key, config.server.admin_token) == (
        9000,
        "wk",
        "at",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[engine]\ntimezone = "Mars/Base"',
            'engine.timezone: unknown time zone "Mars/Base"',
        ),
        ('[engine]\ntimezon = "UTC"', "engine.timezon: unknown key (did you mean `timezone`?)"),
        ("[engin]\n", "engin: unknown key (did you mean `engine`?)"),
        (
            '[engine.global_cap]\ncount = 3\nper = "1x"',
            "engine.global_cap.per: bad duration `1x`: unknown unit `x` (units are s, m, h, d, w)",
        ),
        (
            "[engine.global_cap]\ncount = 3\nper = 5",
            'engine.global_cap.per: expected a duration string like "1d"',
        ),
        (
            '[engine.global_cap]\ncount = 0\nper = "1d"',
            "engine.global_cap.count: must be at least 1",
        ),
        ('[engine.global_cap]\nper = "1d"', "engine.global_cap.count: is required"),
        ('[engine.quiet_hours]\nskip = "yes"', "engine.quiet_hours.skip: expected true or false"),
        (
            '[engine.quiet_hours]\nwindow = "22-08"',
            'engine.quiet_hours.window: expected a window like "22:00-08:00", not "22-08"',
        ),
        (
            '[engine.quiet_hours]\nwindow = "25:00-08:00"',
            'engine.quiet_hours.window: expected a window like "22:00-08:00", not "25:00-08:00"',
        ),
        ('[reachability]\npidgeon = "true"', "reachability.pidgeon: unknown channel"),
        ("[store]\npath = 3", "store.path: expected a string"),
        ('[channels.push]\nprovider = "pigeon"', "channels.push.provider: expected one of"),
        ('[channels.push]\nurl = "x"', "channels.push.provider: is required"),
        ('[channels.fax]\nprovider = "http"', "channels.fax: unknown channel"),
        ('[server]\nport = "80"', "server.port: expected a whole number"),
        ("[server]\nport = 70000", "server.port: must be at most 65535"),
        ('[server]\nwrite_kye = "x"', "server.write_kye: unknown key (did you mean `write_key`?)"),
        ("[engine]\nquiet_hours = 3", "engine.quiet_hours: expected a table"),
    ],
)
def test_each_error_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    lines = errors(tmp_path, text)
    assert any(line.startswith(expected) for line in lines), lines


def test_every_problem_is_reported(tmp_path: Path) -> None:
    lines = errors(tmp_path, '[engine]\ntimezone = "Nowhere"\n[server]\nport = 0\nhots = "x"\n')
    assert [line.split(":")[0] for line in lines] == [
        "engine.timezone",
        "server.port",
        "server.hots",
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "push_enabled ==",
        "exists(email) and",
        "== 3",
        "true\nsegment x = false",
    ],
)
def test_reachability_that_does_not_parse_is_rejected(tmp_path: Path, expr: str) -> None:
    text = f"[reachability]\nemail = {json_string(expr)}\n"
    lines = errors(tmp_path, text)
    assert len(lines) == 1
    assert lines[0].startswith("reachability.email: ")
    with pytest.raises(ExpressionError):
        parse_expression(expr)


def json_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_default_reachability_expressions_parse() -> None:
    config = Config()
    for channel in CHANNELS:
        assert config.reachability_expr(channel) is not None
    assert parse_expression("exists(phone) and sms_opt_in == true") == ast.Binary(
        op="and",
        left=ast.Call(func="exists", args=(ast.Name(name="phone"),)),
        right=ast.Binary(op="==", left=ast.Name(name="sms_opt_in"), right=ast.Bool(value=True)),
    )


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[engine\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not valid TOML: "):
        load_config(path)


def test_a_config_sent_as_json_reads_again(tmp_path: Path) -> None:
    # `journeyc serve` hands its config to the engine process as JSON: every
    # duration must come back as it went (it was written as a bare int and refused).
    path = tmp_path / "journeyc.toml"
    path.write_text('[store]\nlock_timeout = "90s"\n\n[engine.global_cap]\ncount = 3\nper = "1d"\n')
    config = load_config(path)
    again = Config.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.store.lock_timeout == 90
