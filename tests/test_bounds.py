"""Static bounds (journeyc.compile.bounds) against the simulator, and their rules.

The property test is the proof the issue asks for: for generated journeys and
timelines, no simulated entry sends more or stays longer than its bound, and no user
gets more sends from one journey in any day (any week) than the per-day (per-week)
bound. The bounds count local clock time; the timelines keep each user's time zone
fixed and avoid daylight-saving changes (see the module docstring of
``journeyc.compile.bounds``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from journeyc.cli import main as cli
from journeyc.compile import bounds, ir
from journeyc.compile.lower import lower_project
from journeyc.engine.simulate import scratch_store, simulate
from journeyc.events import Event, parse_event
from journeyc.lang.checker import check_project
from journeyc.lang.project import load_project
from tests.engine_helpers import compile_files, config, reject_runaways, time_limit
from tests.journey_strategies import (
    BASE,
    USERS,
    ZONES,
    Scenario,
    _indent,
    _Namer,
    blocks,
    scenarios,
)

DAY_MS = bounds.DAY * 1000
WEEK_MS = bounds.WEEK * 1000
_WAIT = re.compile(r"^(\s+)wait \d+[smhd](\w*)(.*)$", re.M)
UNTILS = (
    "wait until 09:00",
    "wait until 23:30",
    "wait until 10:00 on weekday",
    "wait until 08:00 on tuesday",
    "wait until 12:00 on weekend",
)


# ---------------------------------------------------------------- the property


@st.composite
def bounded_scenarios(draw: st.DrawFn) -> tuple[Scenario, list[Event], str | None]:
    """A generated scenario with some `wait` steps turned into `wait until`, each
    user's time zone set once before anything happens (and never changed), and now
    and then a default quiet-hours window from journeyc.toml."""
    scenario = draw(scenarios(scheduled=draw(st.booleans())))
    files = {}
    for name, text in scenario.files.items():

        def until(m: re.Match[str]) -> str:
            if draw(st.integers(0, 2)):
                return m.group(0)
            return f"{m.group(1)}{draw(st.sampled_from(UNTILS))}{m.group(3)}"

        files[name] = _WAIT.sub(until, text)
    scenario.files = files
    zones = {u: draw(st.sampled_from(ZONES)) for u in USERS}
    stamp = f"{BASE - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
    events = [
        parse_event(
            {"type": "identify", "userId": u, "timestamp": stamp, "traits": {"timezone": z}},
            received_ms=0,
        )
        for u, z in zones.items()
    ]
    for raw in scenario.raw_events:
        raw = dict(raw)
        if raw["type"] == "identify":
            raw["traits"] = {k: v for k, v in raw["traits"].items() if k != "timezone"}
        events.append(parse_event(raw, received_ms=0))
    quiet = draw(st.sampled_from((None, None, "22:00-08:00", "09:00-17:00")))
    return scenario, events, quiet


def _most_in_window(times: list[int], window_ms: int) -> int:
    """The most of ``times`` in any half-open window of ``window_ms``."""
    times = sorted(times)
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_ms:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def _check_against_bounds(
    files: dict[str, str],
    events: list[Event],
    start_ms: int | None,
    until_ms: int,
    quiet: str | None,
    why: str,
) -> None:
    """Simulate, and hold every entry and user to its journey's bounds."""
    reject_runaways(files, events, start_ms, until_ms)
    project = compile_files(files)
    cfg = config(quiet_hours={"window": quiet}) if quiet else None
    default_quiet = cfg.engine.quiet_hours.rule if cfg else None
    with time_limit(60), scratch_store() as store:
        actions = simulate(
            project, events, store, config=cfg, start_ms=start_ms, until_ms=until_ms, scratch=True
        )
    limits = {j: bounds.journey_bounds(p, default_quiet) for j, p in project.journeys.items()}
    entered: dict[tuple[str, str], int] = {}
    sent: dict[tuple[str, str], int] = {}
    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for a in actions:
        key = (a.user, a.journey)
        b = limits[a.journey]
        if a.action == "enter":
            entered[key], sent[key] = a.at_ms, 0
        elif a.action == "send":
            sent[key] += 1
            times[key].append(a.at_ms)
            assert b.sends_per_entry is not None and sent[key] <= b.sends_per_entry, why
        elif a.action == "exit":
            stayed = a.at_ms - entered.pop(key)
            assert b.seconds_per_entry is not None, why
            assert stayed <= b.seconds_per_entry * 1000, (a, b, why)
    for key, at in entered.items():  # still in at the end: not for longer than the bound
        b = limits[key[1]]
        assert b.seconds_per_entry is not None and until_ms - at <= b.seconds_per_entry * 1000, why
    for (_, journey), ts in times.items():
        b = limits[journey]
        for most, window in (
            (b.sends_per_user_per_day, DAY_MS),
            (b.sends_per_user_per_week, WEEK_MS),
        ):
            assert most is None or _most_in_window(ts, window) <= most, (journey, b, why)


@given(bounded_scenarios())
def test_no_simulated_entry_exceeds_its_bounds(
    case: tuple[Scenario, list[Event], str | None],
) -> None:
    scenario, events, quiet = case
    assert scenario.until_ms is not None
    _check_against_bounds(
        scenario.files, events, scenario.start_ms, scenario.until_ms, quiet, scenario.describe()
    )


@st.composite
def busy_users(draw: st.DrawFn) -> tuple[dict[str, str], list[Event]]:
    """One journey entered again and again by one user, to press on the per-day and
    per-week bounds: an entry rule that lets it in often (`entry once per` an hour to
    a day, or `entry always` with a `cap`), steps from the differential strategies
    (branches on attributes the timeline changes, so entries take different ways),
    and up to 40 calls for one user over two days, most of them its trigger."""
    entry = draw(
        st.sampled_from(
            (
                "entry once per 1h",
                "entry once per 6h",
                "entry once per 1d",
                "entry always\n  cap 2 per 1d",
                "entry always\n  cap 3 per 6h",
                "entry once per 30m\n  cap 4 per 1d",
            )
        )
    )
    quiet = draw(st.sampled_from((None, "quiet hours 22:00-08:00", "quiet hours 12:00-13:00")))
    head = ["journey busy", "  when a", f"  {entry}"] + ([f"  {quiet}"] if quiet else [])
    steps = draw(blocks(_Namer(), depth=2))
    files = {"busy.journey": "\n".join(head) + "\n\n" + "\n".join(_indent(steps)) + "\n"}
    events = []
    for n in range(draw(st.integers(5, 40))):
        at = BASE + timedelta(minutes=5 * draw(st.integers(0, 2 * 24 * 12)))
        stamp = f"{at:%Y-%m-%dT%H:%M:%SZ}"
        if draw(st.integers(0, 4)) == 0:
            traits = {
                "push_enabled": draw(st.booleans()),
                "tier": draw(st.sampled_from(("gold", "silver", None))),
                "score": draw(st.integers(0, 3)),
            }
            obj: dict[str, Any] = {"type": "identify", "traits": traits}
        else:
            obj = {"type": "track", "event": draw(st.sampled_from("aaaabc")), "properties": {}}
            if draw(st.booleans()):
                obj["properties"]["n"] = draw(st.integers(0, 3))
        obj |= {"userId": "u1", "timestamp": stamp, "messageId": f"m{n}"}
        events.append(parse_event(obj, received_ms=0))
    return files, events


@given(busy_users())
def test_a_busy_user_gets_no_more_than_the_bounds(
    case: tuple[dict[str, str], list[Event]],
) -> None:
    files, events = case
    until = int((BASE + timedelta(days=4)).timestamp() * 1000)
    why = "\n".join([*files.values(), *map(str, events)])
    _check_against_bounds(files, events, None, until, None, why)


# ---------------------------------------------------------------- the rules, one by one


def _journey(text: str) -> ir.JourneyIR:
    (j,) = compile_files({"j.journey": text}).journeys.values()
    return j


def _bounds(text: str, quiet: ir.QuietHoursRule | None = None) -> ir.JourneyBounds:
    return bounds.journey_bounds(_journey(text), quiet)


CART = """\
journey cart_recovery
  when cart_abandoned
  entry once per 7d
  exit when order_completed
  quiet hours 22:00-08:00
  wait 30m
  send push "Your cart"
  wait for cart_viewed up to 1d
    on timeout
      send email "Still there?"
"""


def test_cart_recovery_bounds() -> None:
    b = _bounds(CART)
    # 30m + the send held up to 10h + 1d + the second send held up to 10h.
    assert (b.sends_per_entry, b.seconds_per_entry) == (2, 30 * 60 + 10 * 3600 + 86_400 + 36_000)
    # Entries are 7 days apart: one entry's two sends in a day; a week's window can
    # hold the end of one entry and the start of the next.
    assert (b.sends_per_user_per_day, b.sends_per_user_per_week) == (2, 4)
    assert b.unbounded == {}


def test_sends_at_one_instant_share_one_quiet_hours_hold() -> None:
    text = 'journey j\n  when a\n  quiet hours 22:00-08:00\n  send push "x"\n  send push "y"\n'
    assert _bounds(text).seconds_per_entry == 10 * 3600
    rezone = text.replace('"x"\n', '"x"\n  set timezone = "Asia/Bangkok"\n')
    assert _bounds(rezone).seconds_per_entry == 20 * 3600
    skip = text.replace("08:00\n", "08:00 skip\n")
    assert _bounds(skip).seconds_per_entry == 0
    # The configured default applies to a journey without quiet hours of its own.
    plain = 'journey j\n  when a\n  send push "x"\n'
    assert _bounds(plain).seconds_per_entry == 0
    rule = ir.QuietHoursRule(start=0, end=6 * 60)
    assert _bounds(plain, rule).seconds_per_entry == 6 * 3600


@pytest.mark.parametrize(
    ("step", "seconds"),
    [
        ("wait until 09:00", 86_400),
        ("wait until 09:00 on monday", 7 * 86_400),
        ("wait until 09:00 on weekday", 3 * 86_400),
        ("wait until 09:00 on weekend", 6 * 86_400),
        ("wait 1h30m", 5400),
        ("wait for b up to 2d", 2 * 86_400),
    ],
)
def test_waits(step: str, seconds: int) -> None:
    assert _bounds(f"journey j\n  when a\n  {step}\n").seconds_per_entry == seconds


def test_longest_branch_counts() -> None:
    text = """\
journey j
  when a
  if score > 1
    send push "a"
    wait 1d
  else
    send push "b"
    send push "c"
  split
    50%
      wait 2d
    50%
      send push "d"
"""
    b = _bounds(text)
    assert (b.sends_per_entry, b.seconds_per_entry) == (3, 3 * 86_400)


def test_a_branch_that_is_never_taken_does_not_count() -> None:
    text = """\
journey j
  when a
  if score > 10
    send push "a"
  elif score > 20
    send push "b"
    send push "c"
    wait 3d
"""
    assert (_bounds(text).sends_per_entry, _bounds(text).seconds_per_entry) == (1, 0)


def test_entry_always_without_cap_is_unbounded_per_day() -> None:
    b = _bounds('journey j\n  when a\n  entry always\n  send push "x"\n')
    assert b.sends_per_entry == 1
    assert b.sends_per_user_per_day is None and b.sends_per_user_per_week is None
    assert "as often as `a` arrives" in b.unbounded["sends_per_user_per_day"]
    capped = _bounds('journey j\n  when a\n  entry always\n  cap 2 per 1d\n  send push "x"\n')
    assert (capped.sends_per_user_per_day, capped.sends_per_user_per_week) == (2, 14)


@pytest.mark.parametrize(
    ("every", "day", "week"),
    [
        ("every day at 10:00 for everyone", 1, 7),
        ("every weekday at 18:30 for everyone", 1, 5),
        ("every monday at 09:00 for everyone", 1, 1),
        ("every 6h for everyone", 4, 28),
    ],
)
def test_a_schedule_bounds_entry_always(every: str, day: int, week: int) -> None:
    b = _bounds(f'journey j\n  {every}\n  entry always\n  send push "x"\n')
    assert (b.sends_per_user_per_day, b.sends_per_user_per_week) == (day, week)


def test_once_per_counts_the_entry_that_started_before_the_window() -> None:
    # Entries a day apart whose last send comes 30m in: a day from 00:30 holds the
    # 00:30 send and the next entry's at 24:00, so two entries count (2 sends each).
    text = (
        'journey j\n  when a\n  entry once per 1d\n  send push "x"\n  wait 30m\n  send push "y"\n'
    )
    assert _bounds(text).sends_per_user_per_day == 4
    assert _bounds(text.replace("once per 1d", "once")).sends_per_user_per_week == 2


def test_an_entry_from_before_the_window_counts_too() -> None:
    """Entries a day apart taking different ways: the first sends late (6h in), the
    next at once, so one day holds both sends though each entry sends one. The bound
    (one entry started before the window, one in it) allows it; the simulator does it."""
    text = """\
journey j
  when a
  entry once per 1d
  if tier == "gold"
    wait 6h
    send push "late"
  else
    send push "at once"
"""
    b = _bounds(text)
    assert (b.sends_per_entry, b.sends_per_user_per_day) == (1, 2)
    day = 86_400_000
    base = int(BASE.timestamp() * 1000)
    calls: list[dict[str, Any]] = [
        {"type": "identify", "traits": {"tier": "gold", "push_enabled": True}, "at": 0},
        {"type": "track", "event": "a", "at": 1},
        {"type": "identify", "traits": {"tier": "silver"}, "at": day},
        {"type": "track", "event": "a", "at": day + 1000},
    ]
    events = [
        parse_event(
            {
                **{k: v for k, v in c.items() if k != "at"},
                "userId": "u1",
                "messageId": f"m{n}",
                "timestamp": f"{BASE + timedelta(milliseconds=c['at']):%Y-%m-%dT%H:%M:%S.%fZ}",
            },
            received_ms=0,
        )
        for n, c in enumerate(calls)
    ]
    with scratch_store() as store:
        actions = simulate(compile_files({"j.journey": text}), events, store, scratch=True)
    sends = [a.at_ms - base for a in actions if a.action == "send"]
    assert len(sends) == 2 and sends[1] - sends[0] < day
    assert _most_in_window(sends, DAY_MS) == 2 == b.sends_per_user_per_day


def test_a_loop_in_the_graph_is_unbounded() -> None:
    j = _journey('journey j\n  when a\n  entry always\n  wait 1h as w\n  send push "x" as s\n')
    nodes = dict(j.nodes)
    nodes["s"] = nodes["s"].model_copy(update={"next": "w"})
    b = bounds.journey_bounds(j.model_copy(update={"nodes": nodes}))
    assert b.sends_per_entry is None and b.seconds_per_entry is None
    assert b.unbounded["sends_per_entry"] == "the steps loop through `w`"


def test_bounds_stay_out_of_the_version() -> None:
    project = compile_files({"j.journey": CART})
    j = project.journeys["cart_recovery"]
    with_b = bounds.with_bounds(project).journeys["cart_recovery"]
    assert with_b.bounds is not None and with_b.version == j.version
    assert "bounds" not in j.model_dump(mode="json")
    # The JSON with bounds reads back into the IR.
    back = ir.JourneyIR.model_validate(with_b.model_dump(mode="json"))
    assert back.bounds == with_b.bounds


# ---------------------------------------------------------------- contradicting branches


def _dead(conds: list[str], orelse: bool = True) -> list[int]:
    lines = ["segment vip = score > 5", "journey j", "  when a"]
    for n, c in enumerate(conds):
        lines += [f"  {'if' if n == 0 else 'elif'} {c}", f'    send push "{n}"']
    if orelse:
        lines += ["  else", '    send push "else"']
    node = next(
        n for n in _journey("\n".join(lines) + "\n").nodes.values() if isinstance(n, ir.BranchNode)
    )
    return bounds.unreachable_cases(node)


@pytest.mark.parametrize(
    ("conds", "dead"),
    [
        (["x > 10", "x > 20"], [1]),
        (["x < 5 and x > 7"], [0]),
        (["x > 10", "x <= 10"], []),  # the else: x null, or not a number
        (["x > 10", "x > 5"], []),
        (["x >= 10", "x == 10"], [1]),
        (["x == 3", "x != 3", "x == 4"], [2, 3]),
        (['tier == "gold"', 'tier == "gold" and score > 1'], [1]),
        (['tier == "gold" and tier == "silver"'], [0]),
        (["x between 1 and 5", "x == 3"], [1]),
        (["x > 10 or x < 0", "x > 20"], [1]),
        (["segment vip", "segment vip"], [1]),
        (["exists(email)", "not exists(email)"], [2]),
        (["true", "x > 1"], [1, 2]),
        (["count(a within 1d) >= 1", "count(a within 1d) < 1", "count(a within 1d) > 0"], [2]),
        (["x > 1", "y > 1"], []),
        (["10 < x", "x > 20"], [1]),
        (['tier in ["gold", "silver"]', 'tier == "gold"'], [1]),
        (['tier not in ["gold"]', 'tier == "gold"'], [2]),
        (["tier in [null]", "tier == null"], [0]),  # `in` never finds null
        (['tier in ["gold", null]', "tier == null"], []),
    ],
)
def test_unreachable_cases(conds: list[str], dead: list[int]) -> None:
    assert _dead(conds) == dead


@given(
    st.lists(
        st.tuples(st.sampled_from(("<", "<=", ">", ">=", "==", "!=")), st.integers(0, 4)),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.one_of(st.none(), st.integers(-1, 5), st.just(2.5)), min_size=1, max_size=6),
)
def test_a_case_called_unreachable_is_never_taken(
    cases: list[tuple[str, int]], values: list[int | float | None]
) -> None:
    """For any value of `x` (null, numbers), the case the engine's rules pick is
    never one the analysis says cannot be taken."""
    from journeyc.engine.values import eq, ge, gt, le, lt, ne

    ops = {"<": lt, "<=": le, ">": gt, ">=": ge, "==": eq, "!=": ne}
    dead = _dead([f"x {op} {c}" for op, c in cases])
    for v in values:
        taken = next((k for k, (op, c) in enumerate(cases) if ops[op](v, c)), len(cases))
        assert taken not in dead, (cases, v)


_ATOMS = st.one_of(
    st.builds(
        "{} {} {}".format,
        st.sampled_from(("x", "y")),
        st.sampled_from(("<", "<=", ">", ">=", "==", "!=")),
        st.sampled_from(("0", "1", "2", "2.5", '"a"', "true", "null")),
    ),
    st.builds("{} > x".format, st.sampled_from(("1", "2"))),
    st.sampled_from(
        (
            'x in [1, "a", null]',
            "x not in [2, 3]",
            "x between 1 and 2",
            "exists(x)",
            "x",
        )
    ),
)
_CONDS = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.builds("({}) and ({})".format, inner, inner),
        st.builds("({}) or ({})".format, inner, inner),
        st.builds("not ({})".format, inner),
    ),
    max_leaves=4,
)
_VALUES = st.sampled_from((None, 0, 1, 2, 3, 1.5, 2.5, -1, "a", "b", True, False))


@given(st.lists(_CONDS, min_size=1, max_size=3), st.lists(st.tuples(_VALUES, _VALUES), max_size=12))
def test_the_engine_never_takes_a_branch_called_unreachable(
    conds: list[str], profiles: list[tuple[object, object]]
) -> None:
    """Mixed conditions over two attributes (comparisons either way round, `==`
    with strings, booleans and null, `in` lists, `between`, `and`/`or`/`not`), asked
    by the engine's own expression compiler for many values: the case it takes is
    never one the analysis called unreachable."""
    from journeyc.compile.lower import lower_expr
    from journeyc.config import parse_expression
    from journeyc.engine.expr import Scope, compile_predicate

    exprs = [lower_expr(parse_expression(c)) for c in conds]
    node = ir.BranchNode(
        id="1", cases=[ir.Case(cond=e, then=None) for e in exprs], orelse=None, next=None
    )
    dead = bounds.unreachable_cases(node)
    preds = [compile_predicate(e) for e in exprs]
    for x, y in [*profiles, (None, None)]:
        profile = {k: v for k, v in (("x", x), ("y", y)) if v is not None}
        scope = Scope(now=BASE, profile=profile)
        taken = next((k for k, p in enumerate(preds) if p(scope)), len(preds))
        assert taken not in dead, (conds, x, y, dead)


# ---------------------------------------------------------------- diagnostics and commands


def _project(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    return tmp


def test_wait_for_that_the_exit_takes_is_warned_about(tmp_path: Path) -> None:
    text = (
        'journey j\n  when a\n  exit when b\n  wait for b up to 1d\n    on b\n      send push "x"\n'
    )
    project = load_project([str(_project(tmp_path, {"j.journey": text}))])
    [d] = check_project(project)
    assert (d.code, d.span.line, d.span.column) == ("wait_for_exits_first", 4, 3)
    # An exit with a `where` may let the event through: no warning.
    text2 = text.replace("exit when b\n", "exit when b where event.n > 1\n")
    (tmp_path / "j.journey").write_text(text2, encoding="utf-8")
    assert check_project(load_project([str(tmp_path)])) == []


def test_validate_verbose_prints_a_line_per_journey(tmp_path: Path) -> None:
    _project(tmp_path, {"cart.journey": CART})
    result = CliRunner().invoke(cli, ["validate", "-v", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (
        "cart_recovery: ≤ 2 sends per entry, ≤ 1d20h30m in the journey, "
        "≤ 2 sends/user/day, ≤ 4/week"
    ) in result.output


def test_validate_with_a_global_cap_warns(tmp_path: Path) -> None:
    _project(tmp_path, {"cart.journey": CART})
    toml = tmp_path / "journeyc.toml"
    toml.write_text('[engine.global_cap]\ncount = 1\nper = "1d"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", "--config", str(toml), str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning[over_global_cap]" in result.output
    assert "up to 2 messages in 1d, more than the global cap of 1 per 1d" in result.output
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert "over_global_cap" not in result.output


def test_compile_json_has_bounds_outside_the_version(tmp_path: Path) -> None:
    _project(tmp_path, {"cart.journey": CART})
    result = CliRunner().invoke(cli, ["compile", "--json", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    j = data["journeys"]["cart_recovery"]
    assert j["bounds"] == {
        "sends_per_entry": 2,
        "seconds_per_entry": 160_200,
        "sends_per_user_per_day": 2,
        "sends_per_user_per_week": 4,
        "unbounded": {},
    }
    plain = lower_project(load_project([str(tmp_path)])).journeys["cart_recovery"]
    assert j["version"] == plain.version
    ir.ProjectIR.model_validate(data)


def test_validate_config_problems(tmp_path: Path) -> None:
    _project(tmp_path, {"cart.journey": CART})
    result = CliRunner().invoke(
        cli, ["validate", "--config", str(tmp_path / "no.toml"), str(tmp_path)]
    )
    assert result.exit_code == 2 and "--config: no such file" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nglobal_cap = 3\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", "--config", str(bad), str(tmp_path)])
    assert result.exit_code == 1 and "engine.global_cap: expected a table" in result.output


def test_validate_verbose_says_why_a_bound_is_missing(tmp_path: Path) -> None:
    _project(tmp_path, {"j.journey": 'journey j\n  when a\n  entry always\n  send push "x"\n'})
    result = CliRunner().invoke(cli, ["validate", "-v", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (
        "j: ≤ 1 send per entry, ≤ 0s in the journey, unbounded sends/user/day (entry always "
        "with no cap: as often as `a` arrives)"
    ) in result.output


def test_validate_verbose_prints_no_bounds_for_an_invalid_project(tmp_path: Path) -> None:
    _project(tmp_path, {"j.journey": "journey j\n  when a\n  send push nowhere\n"})
    result = CliRunner().invoke(cli, ["validate", "-v", str(tmp_path)])
    assert result.exit_code == 1
    assert "per entry" not in result.output


def test_compile_summary_and_default_quiet_hours(tmp_path: Path) -> None:
    _project(tmp_path, {"j.journey": 'journey j\n  when a\n  send push "x"\n'})
    result = CliRunner().invoke(cli, ["compile", str(tmp_path)])
    assert "  bounds    ≤ 1 send per entry, ≤ 0s in the journey" in result.output
    toml = tmp_path / "journeyc.toml"
    toml.write_text('[engine.quiet_hours]\nwindow = "22:00-08:00"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["compile", "--json", "--config", str(toml), str(tmp_path)])
    assert json.loads(result.output)["journeys"]["j"]["bounds"]["seconds_per_entry"] == 36_000
