"""Every journey example of the docs and of the language contract validates.

Each example is checked in a project of its own (``tmp_path``) that holds the example
and a prelude: the messages and segments declared elsewhere in the docs that the example
uses, and no others. ``file "…"`` templates are copied from the example project
(``journeys/``), so the docs and the shipped templates cannot drift apart.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from journeyc.lang import ast
from journeyc.lang.checker import check_project
from journeyc.lang.diagnostics import Diagnostic, render_text
from journeyc.lang.parser import parse_source
from journeyc.lang.project import load_project

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "language.md"
CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "LANGUAGE.md"
JOURNEYS = ROOT / "journeys"

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FILE_REF = re.compile(r'\bfile\s+"([^"]+)"')
EXPECTED = re.compile(r"\A#\s*errors?:\s*(.+)\n")
NAMED_FILE = re.compile(r"\A#\s*(?:journeys/)?([A-Za-z_][A-Za-z0-9_]*)\.journey\s*\n")


@dataclass(frozen=True)
class Block:
    """A fenced code block: which document, its first line there, its info string."""

    doc: str
    line: int
    info: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def fenced_blocks(path: Path, doc: str) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(doc, text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
        for m in FENCE.finditer(text)
    ]


def docs_blocks() -> list[Block]:
    return fenced_blocks(DOCS, "docs/language.md")


def contract_blocks() -> list[Block]:
    """All code blocks of LANGUAGE.md: every one of them is journey source."""
    if not CONTRACT.is_file():
        return []
    return fenced_blocks(CONTRACT, "LANGUAGE.md")


def valid_blocks() -> list[Block]:
    return [b for b in docs_blocks() if b.info == "journey"] + contract_blocks()


def invalid_blocks() -> list[Block]:
    return [b for b in docs_blocks() if b.info == "journey-invalid"]


needs_contract = pytest.mark.skipif(
    not CONTRACT.is_file(),
    reason=f"the language contract is not checked out beside the repo ({CONTRACT})",
)

# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Decl:
    """A message or segment declared in a doc block, with the names it uses."""

    kind: str
    name: str
    text: str
    doc: str
    segments: frozenset[str]


def references(node: object) -> tuple[set[str], set[str]]:
    """The message and segment names a syntax tree uses."""
    messages: set[str] = set()
    segments: set[str] = set()

    for n in ast.walk(node):
        if isinstance(n, ast.SegmentRef):
            segments.add(n.name)
        elif isinstance(n, ast.WhenSegment | ast.Every) and n.segment is not None:
            segments.add(n.segment)
        elif isinstance(n, ast.MessageRef) and n.name is not None:
            messages.add(n.name)
    return messages, segments


def declarations(block: Block) -> list[Decl]:
    tree = parse_source(block.text, "block.journey").tree
    assert tree is not None, f"{block.id}: the block does not parse"
    out = []
    for d in tree.declarations:
        if isinstance(d, ast.Message | ast.Segment):
            kind = "message" if isinstance(d, ast.Message) else "segment"
            text = block.text[d.span.start : d.span.end] + "\n"
            out.append(Decl(kind, d.name, text, block.doc, frozenset(references(d)[1])))
    return out


def declaration_pool() -> dict[tuple[str, str], list[Decl]]:
    """(kind, name) → its declarations in the docs and the contract."""
    pool: dict[tuple[str, str], list[Decl]] = {}
    for block in valid_blocks():
        for d in declarations(block):
            pool.setdefault((d.kind, d.name), []).append(d)
    return pool


def prelude_for(block: Block) -> str:
    """The declarations ``block`` uses and does not declare itself, segments closed
    over the segments they use. Each comes from the block's own document if it has it."""
    pool = declaration_pool()
    tree = parse_source(block.text, "block.journey").tree
    if tree is not None:
        messages, segments = references(tree)
        own = {(type(d).__name__.lower(), d.name) for d in tree.declarations}
    else:
        # A block that does not parse: whatever pool name it mentions.
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", block.text))
        messages = {n for (k, n) in pool if k == "message" and n in words}
        segments = {n for (k, n) in pool if k == "segment" and n in words}
        own = set()
    wanted = [("message", n) for n in sorted(messages)] + [("segment", n) for n in sorted(segments)]
    chosen: dict[tuple[str, str], Decl] = {}
    while wanted:
        key = wanted.pop()
        if key in own or key in chosen or key not in pool:
            continue  # unknown names are left for the checker to report
        candidates = pool[key]
        decl = next((d for d in candidates if d.doc == block.doc), candidates[0])
        chosen[key] = decl
        wanted.extend(("segment", s) for s in decl.segments)
    return "\n".join(chosen[k].text for k in sorted(chosen))


def write_project(block: Block, directory: Path) -> None:
    named = NAMED_FILE.match(block.text)
    name = named.group(1) if named else "example"
    (directory / f"{name}.journey").write_text(block.text, encoding="utf-8")
    prelude = prelude_for(block)
    if prelude:
        (directory / "prelude.journey").write_text(prelude, encoding="utf-8")
    for rel in sorted(set(FILE_REF.findall(block.text + prelude))):
        source = JOURNEYS / rel
        assert source.is_file(), f'{block.id}: `file "{rel}"` is not in journeys/'
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def check(block: Block, directory: Path) -> tuple[list[Diagnostic], str]:
    write_project(block, directory)
    project = load_project([directory])
    diagnostics = check_project(project)
    return diagnostics, render_text(diagnostics, project.sources)


# ---------------------------------------------------------------- tests


def test_the_docs_have_examples_of_each_kind() -> None:
    infos = [b.info for b in docs_blocks()]
    assert infos.count("journey") >= 30
    assert infos.count("journey-invalid") >= 3


@needs_contract
def test_the_contract_examples_are_found() -> None:
    # two journeys, the segments block and the messages block
    assert len(contract_blocks()) >= 4


@pytest.mark.parametrize("block", valid_blocks(), ids=lambda b: b.id)
def test_example_validates(block: Block, tmp_path: Path) -> None:
    diagnostics, rendered = check(block, tmp_path)
    errors = [d for d in diagnostics if d.is_error]
    assert not errors, f"{block.id}:\n{rendered}"


@pytest.mark.parametrize("block", invalid_blocks(), ids=lambda b: b.id)
def test_invalid_example_is_rejected(block: Block, tmp_path: Path) -> None:
    diagnostics, rendered = check(block, tmp_path)
    codes = {d.code for d in diagnostics if d.is_error}
    assert codes, f"{block.id} was accepted"
    expected = EXPECTED.match(block.text)
    if expected:
        wanted = {c.strip() for c in expected.group(1).split(",")}
        assert wanted <= codes, f"{block.id}: expected {sorted(wanted)}:\n{rendered}"


def test_invalid_examples_say_what_they_show() -> None:
    for block in invalid_blocks():
        assert EXPECTED.match(block.text), f"{block.id}: start with `# error: CODE`"


def test_a_name_is_declared_one_way_only() -> None:
    """The prelude can only pick the right declaration if the docs never give one name
    two different bodies."""
    for (kind, name), decls in declaration_pool().items():
        bodies = {d.text for d in decls}
        assert len(bodies) == 1, f"{kind} `{name}` is declared differently in the docs"


def test_prelude_holds_exactly_what_a_block_uses() -> None:
    block = Block("docs/language.md", 0, "journey", "when entering at_risk\nsend push cart_push\n")
    prelude = prelude_for(block)
    tree = parse_source(prelude, "prelude.journey").tree
    assert tree is not None
    assert sorted(d.name for d in tree.declarations) == ["at_risk", "cart_push"]


def test_prelude_follows_segments_through_segments() -> None:
    block = Block("docs/language.md", 0, "journey", "when entering lapsing_vip\nexit\n")
    tree = parse_source(prelude_for(block), "prelude.journey").tree
    assert tree is not None
    assert sorted(d.name for d in tree.declarations) == ["big_spender", "lapsing_vip"]


def test_prelude_leaves_out_what_a_block_declares() -> None:
    text = 'message cart_push\n  push\n    body "hi"\n\nwhen a\nsend push cart_push\n'
    assert prelude_for(Block("docs/language.md", 0, "journey", text)) == ""


@needs_contract
@pytest.mark.parametrize("block", contract_blocks(), ids=lambda b: b.id)
def test_docs_carry_the_contract_example_verbatim(block: Block) -> None:
    carried = [b.text for b in docs_blocks() if b.info == "journey"]
    assert block.text in carried


@needs_contract
def test_docs_carry_every_inline_form_of_the_contract() -> None:
    contract = CONTRACT.read_text(encoding="utf-8")
    docs = DOCS.read_text(encoding="utf-8")
    outside_fences = FENCE.sub("", contract)
    missing = sorted({c for c in INLINE_CODE.findall(outside_fences) if c not in docs})
    assert not missing, f"docs/language.md lacks these forms of LANGUAGE.md: {missing}"


def _inline_journey_forms() -> Iterator[str]:
    yield "every monday at 09:00 for hero"
    yield "wait until 10:00 on monday"
    yield "send push cart_push or email cart_mail"


@pytest.mark.parametrize("form", list(_inline_journey_forms()))
def test_inline_forms_appear_inside_checked_examples(form: str) -> None:
    assert any(form in b.text for b in docs_blocks() if b.info == "journey")
