"""Golden Liquid conformance, through journeyc's renderer and through python-liquid.

Golden Liquid (https://github.com/jg-rp/golden-liquid, MIT) is the conformance suite
python-liquid is tested against: a JSON file of ``{"tests": [...]}``, each test a
``name``, a ``template``, render ``data`` and the expected ``result`` (or
``results``, any one of them, or ``invalid: true`` for a template that must fail),
with ``templates`` for the partials ``include`` and ``render`` load. The older layout,
``{"test_groups": [{"name", "tests": [...]}]}`` with ``context``, ``want``,
``partials`` and ``error``, is read too (its case names are ``group, test``; the lists
below use the current layout's names).

Every case is rendered twice over:

- by journeyc's renderer, as a send renders it (:meth:`Renderer.render` of an inline
  ``webhook`` message: the render shortcut where it applies, else Liquid with
  journeyc's environment and render limits, then the memo of remembered fields for
  the same send again); the case's ``data`` are the send's ``with`` values, each a
  top-level variable;
- by python-liquid as published: ``liquid.Environment`` with a ``DictLoader`` of the
  case's partials, and python-liquid's own filter-argument parser (journeyc widens it,
  :mod:`journeyc.messages.liquid_compat`).

Both must meet the expectation, a failure being a :class:`RenderError` on journeyc's
side. The exceptions are listed below, in one place: the cases that cannot apply to
journeyc (:func:`not_applicable`), where journeyc deliberately differs
(:data:`JOURNEYC_DIFFERS`), and where python-liquid itself differs from the suite
(:data:`LIQUID_DIFFERS`). Each entry is checked to still be needed.

Two files: our own cases, ``tests/fixtures/golden/journeyc_golden.json``, always; the
public suite when it is placed at ``../shared/golden_liquid.json`` beside the checkout
(it is not vendored here), else that test is skipped saying where to put it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import liquid
import pytest
from liquid import DictLoader

from journeyc.lang.builtins import INLINE_FIELD
from journeyc.messages import liquid_compat
from journeyc.messages.fastrender import shortcut
from journeyc.messages.render import RESERVED_NAMES, RenderContext, Renderer, RenderError

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "tests" / "fixtures" / "golden" / "journeyc_golden.json"
PUBLIC = ROOT.parent / "shared" / "golden_liquid.json"

NOW = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)  # the send's clock
CHANNEL = "webhook"


@dataclass(frozen=True)
class Deviation:
    """What journeyc gives instead of Liquid's result, and why: ``result`` is
    journeyc's text, or None where journeyc raises a RenderError."""

    reason: str
    result: str | None = None


# Where journeyc deliberately differs from Liquid. The golden files say what Liquid
# gives; journeyc gives this instead.
JOURNEYC_DIFFERS: dict[str, Deviation] = {
    "journeyc, top_sellers without a catalog": Deviation(
        "journeyc's recommendation filter; without a catalog it renders no products",
        "0",
    ),
    "journeyc, a filter argument named limit": Deviation(
        "journeyc reads `limit:` (a Liquid keyword) as a filter argument name, as "
        "LANGUAGE.md writes it (messages/liquid_compat.py)",
        "0",
    ),
    "journeyc, cross_sell of the user": Deviation(
        "journeyc's recommendation filter; without a catalog it renders no products",
        "0",
    ),
    "journeyc, loops past the iteration limit": Deviation(
        "render.loop_iterations (10,000 a field by default)"
    ),
    "journeyc, loops in a row count together": Deviation(
        "render.loop_iterations counts every loop of a field together"
    ),
    "journeyc, a capture past the field size limit": Deviation(
        "render.field_bytes (512 KiB a field by default) counts captures too"
    ),
}

# Where python-liquid (the version installed) differs from the suite: journeyc renders
# with python-liquid, so it is checked to agree with python-liquid there.
LIQUID_DIFFERS: dict[str, str] = {
    "filters, round half away from zero": (
        "python-liquid rounds halves to even (Python's round); Ruby Liquid away from zero"
    ),
    "blank and empty, false is equal to blank": "python-liquid 2.3: false != blank",
    "blank and empty, nil is equal to blank": "python-liquid 2.3: nil != blank",
    "blank and empty, null is equal to blank": "python-liquid 2.3: nil != blank",
    "blank and empty, undefined is equal to blank": "python-liquid 2.3: undefined != blank",
    "tags, case, unexpected when token, strict2": (
        "python-liquid 2.3 parses laxly what Liquid's strict2 parser refuses"
    ),
    "tags, comment, incomplete tags are not parsed": (
        "python-liquid 2.3 does not refuse an unclosed tag inside a comment"
    ),
}


@dataclass(frozen=True)
class Case:
    """One golden test case."""

    name: str
    template: str
    data: Mapping[str, Any] = field(default_factory=dict)
    templates: Mapping[str, str] = field(default_factory=dict)
    result: str | None = None
    results: tuple[str, ...] | None = None
    invalid: bool = False

    def met_by(self, outcome: str | None) -> bool:
        """Whether ``outcome`` (the text, None for a failure) is what the case expects."""
        if self.invalid:
            return outcome is None
        if self.results is not None:
            return outcome in self.results
        return outcome is not None and outcome == self.result


def load(path: Path) -> list[Case]:
    """The cases of a golden-format file (either layout)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if "tests" in doc:
        return [_case(t) for t in doc["tests"]]
    return [  # the older layout
        _case(
            {
                "name": f"{group['name']}, {t['name']}",
                "template": t["template"],
                "data": t.get("context") or {},
                "templates": t.get("partials") or {},
                **({"invalid": True} if t.get("error") else {"result": t["want"]}),
            }
        )
        for group in doc["test_groups"]
        for t in group["tests"]
    ]


def _case(t: Mapping[str, Any]) -> Case:
    results = t.get("results")
    return Case(
        name=t["name"],
        template=t["template"],
        data=t.get("data") or {},
        templates=t.get("templates") or {},
        result=t.get("result"),
        results=None if results is None else tuple(results),
        invalid=bool(t.get("invalid")),
    )


def not_applicable(case: Case) -> str | None:
    """Why ``case`` cannot be rendered by journeyc as it is written, or None."""
    if case.templates:
        return (
            "needs partial templates: journeyc's environment has no loader "
            "(include and render load no templates)"
        )
    names = set(case.data)
    with contextlib.suppress(Exception):  # a template that does not parse: both fail
        names |= set(liquid.Environment().parse(case.template).analyze().globals)
    taken = sorted(names & RESERVED_NAMES)
    if taken:
        return f"reads {', '.join(taken)}: names journeyc's renderer gives every template"
    return None


def render_liquid(case: Case) -> str | None:
    """``case`` rendered by python-liquid as published; None when it fails."""
    env = liquid.Environment(loader=DictLoader(dict(case.templates)))
    # Partials are parsed as they render: both inside.
    with liquid_compat.as_published():
        try:
            return env.from_string(case.template).render(**case.data)
        except Exception:
            return None


def render_journeyc(case: Case, renderer: Renderer) -> str | None:
    """``case`` rendered as journeyc renders a send; None for a RenderError (any other
    exception is a bug, and fails the test)."""
    context = RenderContext(
        user_id="golden",
        user={},
        event=None,
        journey_id="golden",
        step="golden",
        now=NOW,
        values=dict(case.data),
    )
    try:
        fields = renderer.render(None, case.template, CHANNEL, context)
    except RenderError:
        return None
    return fields[INLINE_FIELD[CHANNEL]]


def check(case: Case) -> None:
    """Assert journeyc and python-liquid each do what the suite (and our lists) say."""
    reason = not_applicable(case)
    if reason is not None:
        pytest.skip(reason)
    renderer = Renderer()
    ours = render_journeyc(case, renderer)
    # The same send again: now from the renderer's caches (a remembered field).
    assert render_journeyc(case, renderer) == ours
    plain = render_liquid(case)
    if case.name in LIQUID_DIFFERS:
        assert not case.met_by(plain), "python-liquid now meets this case: unlist it"
        expected_plain = plain
    else:
        assert case.met_by(plain), f"python-liquid gives {plain!r}"
        expected_plain = None
    deviation = JOURNEYC_DIFFERS.get(case.name)
    if deviation is not None:
        assert ours == deviation.result, deviation.reason
        assert not case.met_by(ours), "journeyc now meets this case: unlist it"
    elif case.name in LIQUID_DIFFERS:
        assert ours == expected_plain, "journeyc should follow its python-liquid"
    else:
        assert case.met_by(ours), f"journeyc gives {ours!r}"


OUR_CASES = load(OURS)


@pytest.mark.parametrize("case", OUR_CASES, ids=[c.name for c in OUR_CASES])
def test_journeyc_golden(case: Case) -> None:
    check(case)


def _public_params() -> list[Any]:
    if not PUBLIC.is_file():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f"the public Golden Liquid suite is not here: place golden_liquid.json "
                    f"from https://github.com/jg-rp/golden-liquid (MIT) at {PUBLIC}"
                ),
                id="absent",
            )
        ]
    return [pytest.param(c, id=c.name) for c in load(PUBLIC)]


@pytest.mark.parametrize("case", _public_params())
def test_public_golden_liquid(case: Case) -> None:
    check(case)


KEYS = {"name", "template", "data", "templates", "result", "results", "invalid", "tags"}


def test_our_file_is_well_formed() -> None:
    doc = json.loads(OURS.read_text(encoding="utf-8"))
    names = [t["name"] for t in doc["tests"]]
    assert len(names) == len(set(names)), "case names are unique"
    for t in doc["tests"]:
        assert set(t) <= KEYS, t["name"]
        assert t["name"] == t["name"].strip() and t["name"], t
        assert isinstance(t["template"], str)
        assert isinstance(t.get("data", {}), dict)
        assert sum(k in t for k in ("result", "results", "invalid")) == 1, t["name"]
        assert t.get("invalid", True) is True


def test_every_listed_case_exists() -> None:
    # A list entry naming no case would hide nothing and check nothing.
    # (Without the public suite, only the entries for our own cases can be checked.)
    names = {c.name for c in OUR_CASES}
    listed = set(JOURNEYC_DIFFERS) | (set(LIQUID_DIFFERS) & names)
    if PUBLIC.is_file():
        names |= {c.name for c in load(PUBLIC)}
        listed |= set(LIQUID_DIFFERS)
    assert set(JOURNEYC_DIFFERS) <= {c.name for c in OUR_CASES}
    assert listed <= names, sorted(listed - names)


def test_our_cases_exercise_the_render_shortcut() -> None:
    # The shortcut renders the common shapes without Liquid: enough of our cases must
    # take it for this file to check it.
    env = Renderer().environment
    taken = []
    for case in OUR_CASES:
        try:
            template = env.from_string(case.template)
        except Exception:
            continue
        if shortcut(template) is not None:
            taken.append(case.name)
    assert len(taken) >= 25, taken
