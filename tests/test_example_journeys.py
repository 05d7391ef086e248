"""The example project (`journeys/`) and the sample data (`examples/`) stay sound."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import liquid
import pytest

from journeyc.lang import ast
from journeyc.lang.checker import check_project
from journeyc.lang.diagnostics import render_text
from journeyc.lang.formatter import format_source
from journeyc.lang.project import Project, load_project
from tests.test_docs import references

ROOT = Path(__file__).resolve().parents[1]
JOURNEYS = ROOT / "journeys"
TEMPLATES = JOURNEYS / "templates"
EXAMPLES = ROOT / "examples"
JOURNEY_FILES = sorted(JOURNEYS.rglob("*.journey"))


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project([JOURNEYS])


def _trees(project: Project) -> list[ast.SourceFile]:
    assert not project.has_syntax_errors
    return project.trees


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{n} is not a JSON object"
        rows.append(row)
    return rows


# ---------------------------------------------------------------- journeys/


def test_the_project_has_no_errors_and_no_warnings(project: Project) -> None:
    diagnostics = check_project(project)
    assert not diagnostics, render_text(diagnostics, project.sources)


def test_the_project_covers_the_practice(project: Project) -> None:
    journeys = {j.name for t in _trees(project) for j in t.journeys}
    assert {
        "cart_recovery",
        "category_best_sellers",
        "brand_affinity",
        "visit_discount",
        "dormant_cross_sell",
        "editorial",
        "welcome",
        "second_purchase_test",
    } <= journeys
    segments = {s.name for t in _trees(project) for s in t.segments}
    assert {"hero", "at_risk", "dormant", "regular", "browser", "buyer", "unhappy"} <= segments


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.name)
def test_every_file_starts_by_saying_what_it_does(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert lines and lines[0].startswith("# "), f"{path.name} does not start with a comment"
    assert any("Why" in line for line in header), f"{path.name}: say why, from PRACTICE.md"


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.name)
def test_every_file_is_in_the_canonical_layout(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text, f"run `journeyc fmt {path}`"


def _file_fields(project: Project) -> list[tuple[str, ast.Field]]:
    return [
        (t.path, f)
        for t in _trees(project)
        for m in t.messages
        for part in m.parts
        for f in part.fields
        if f.is_file
    ]


def test_every_template_file_exists_beside_its_journey(project: Project) -> None:
    fields = _file_fields(project)
    assert fields
    for path, f in fields:
        target = Path(path).parent / f.value.value
        assert target.is_file(), f"{path}: `file {f.value.value!r}` does not exist"


def test_every_template_is_used(project: Project) -> None:
    used = {(Path(p).parent / f.value.value).resolve() for p, f in _file_fields(project)}
    for template in sorted(TEMPLATES.iterdir()):
        assert template.resolve() in used, f"{template.name} is used by no message"


def test_every_message_and_segment_is_used(project: Project) -> None:
    trees = _trees(project)
    messages: set[str] = set()
    segments: set[str] = set()
    for t in trees:
        for j in t.journeys:
            used_messages, used_segments = references(j)
            messages |= used_messages
            segments |= used_segments
    assert {m.name for t in trees for m in t.messages} - messages == set()
    assert {s.name for t in trees for s in t.segments} - segments == set()


def test_recommendation_filters_are_used_as_the_language_writes_them() -> None:
    text = "\n".join(
        p.read_text(encoding="utf-8") for p in [*JOURNEY_FILES, *sorted(TEMPLATES.iterdir())]
    )
    assert re.search(r"event\.category \| top_sellers: 3", text)
    assert re.search(r'\| popular: by: \\?"brand\\?", days: 10', text)
    assert "user | cross_sell: 3" in text
    assert "{% for p in picks" in text


def test_messages_and_templates_parse_as_liquid(project: Project) -> None:
    env = liquid.Environment()
    for t in _trees(project):
        for m in t.messages:
            for part in m.parts:
                for f in part.fields:
                    source = (
                        (Path(t.path).parent / f.value.value).read_text(encoding="utf-8")
                        if f.is_file
                        else f.value.value
                    )
                    env.parse(source)  # raises on a syntax error


def test_some_fields_speak_thai(project: Project) -> None:
    locales = {
        f.locale for t in _trees(project) for m in t.messages for p in m.parts for f in p.fields
    }
    assert "th" in locales


# ---------------------------------------------------------------- examples/


def test_events_are_segment_track_and_identify_calls() -> None:
    rows = _read_jsonl(EXAMPLES / "events.jsonl")
    assert len(rows) >= 20
    ids = [r["messageId"] for r in rows]
    assert len(ids) == len(set(ids)), "messageId must be unique"
    for r in rows:
        assert r["type"] in ("track", "identify"), r
        assert isinstance(r["userId"], str) and r["userId"]
        datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        if r["type"] == "track":
            assert isinstance(r["event"], str) and r["event"]
            assert isinstance(r["properties"], dict)
        else:
            assert isinstance(r["traits"], dict)
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps), "events are in time order"


def test_identify_traits_give_the_channels_what_they_need() -> None:
    traits: dict[str, dict[str, Any]] = {}
    for r in _read_jsonl(EXAMPLES / "events.jsonl"):
        if r["type"] == "identify":
            traits.setdefault(r["userId"], {}).update(r["traits"])
    assert len(traits) >= 5
    for user, t in traits.items():
        for key in ("first_name", "email", "push_enabled", "locale", "timezone", "lifecycle"):
            assert key in t, f"{user} lacks {key}"
    assert any(t["locale"] == "th" for t in traits.values())
    assert any(not t["push_enabled"] and t.get("whatsapp_opt_in") for t in traits.values())


def test_events_name_products_of_the_catalog() -> None:
    catalog = _read_jsonl(EXAMPLES / "catalog.jsonl")
    keys = {"id", "name", "brand", "category", "price", "url", "image", "in_stock"}
    for product in catalog:
        assert set(product) == keys, product
    ids = {p["id"] for p in catalog}
    assert len(ids) == len(catalog)
    assert any(not p["in_stock"] for p in catalog)
    for r in _read_jsonl(EXAMPLES / "events.jsonl"):
        props = r.get("properties", {})
        named = [props.get("product_id")] + [p["product_id"] for p in props.get("products", [])]
        for pid in filter(None, named):
            assert pid in ids, f"{r['messageId']}: unknown product {pid}"


def test_the_readme_tells_every_users_story() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    users = {r["userId"] for r in _read_jsonl(EXAMPLES / "events.jsonl")}
    for user in sorted(users):
        assert f"### {user} " in readme, f"examples/README.md does not tell {user}'s story"
