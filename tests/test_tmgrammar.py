"""The VS Code extension's TextMate grammar, run by a real TextMate engine.

``editors/vscode/syntaxes/journey.tmLanguage.json`` tokenizes the example journeys
(``journeys/*.journey`` and every ``journey`` block of docs/language.md) with
vscode-textmate and vscode-oniguruma, as VS Code does (``tests/tmgrammar/tokenize.js``
under Node). journeyc's own lexer says what each token is; the grammar must agree:
every keyword gets a keyword scope, every duration, time, percentage, number, string
and comment its own, channels and declared names theirs, and no character of the
examples is left unscoped or marked invalid.

The npm packages are installed by ``.ci/run`` in ``.ci/npm`` (or found in
``JOURNEYC_NODE_MODULES``). Outside CI the test installs them there when npm is at
hand; under CI (``CI=true``) a missing ``node`` or package fails the test, it is
never skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from journeyc.lang import ast
from journeyc.lang.comments import scan_comments
from journeyc.lang.formatter import reserved_words
from journeyc.lang.parser import parse_source, parser
from tests.node_helpers import node_packages

ROOT = Path(__file__).resolve().parents[1]
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "journey.tmLanguage.json"
TOKENIZE = Path(__file__).parent / "tmgrammar" / "tokenize.js"
NPM_DIR = ROOT / ".ci" / "npm"
PACKAGES = ("vscode-textmate@9", "vscode-oniguruma@2")
FENCE = re.compile(r"^```journey\n(.*?)^```[ \t]*$", re.M | re.S)
CONSTANT_WORDS = {"true", "false", "null"}


def node_modules() -> Path:
    """Where vscode-textmate and vscode-oniguruma are, installed if they may be."""
    given = os.environ.get("JOURNEYC_NODE_MODULES")
    return node_packages(PACKAGES, NPM_DIR, Path(given) if given else None)


@dataclass(frozen=True)
class Token:
    """A TextMate token: UTF-16 start and end in its line, and its scopes."""

    start: int
    end: int
    scopes: tuple[str, ...]


Tokens = dict[str, list[list[Token]]]


def tokenize(texts: dict[str, str]) -> Tokens:
    """Each text's lines as TextMate tokens."""
    request = json.dumps({"grammar": str(GRAMMAR), "texts": texts})
    done = subprocess.run(
        ["node", str(TOKENIZE), str(node_modules())],
        input=request,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    raw = json.loads(done.stdout)
    return {
        name: [[Token(t["start"], t["end"], tuple(t["scopes"])) for t in line] for line in lines]
        for name, lines in raw.items()
    }


def examples() -> dict[str, str]:
    """The example journeys: the project in journeys/ and docs/language.md's blocks."""
    out = {str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.glob("journeys/*.journey"))}
    doc = (ROOT / "docs" / "language.md").read_text()
    for n, m in enumerate(FENCE.finditer(doc), 1):
        out[f"docs/language.md#{n}"] = m.group(1)
    return out


@cache
def tokenized() -> tuple[dict[str, str], Tokens]:
    texts = examples()
    return texts, tokenize(texts)


def scopes_at(
    tokens: Tokens, texts: dict[str, str], name: str, line: int, column: int
) -> tuple[str, ...]:
    """The scopes of the character at 1-based ``line`` and ``column`` (characters)."""
    text_line = texts[name].split("\n")[line - 1]
    utf16 = len(text_line[: column - 1].encode("utf-16-le")) // 2
    for t in tokens[name][line - 1]:
        if t.start <= utf16 < t.end:
            return t.scopes
    raise AssertionError(f"{name}:{line}:{column}: no token")


def lexed(text: str) -> Iterator[tuple[str, str, int, int]]:
    """journeyc's own tokens: (terminal, text, line, column), layout left out."""
    for tok in parser().lex(text):
        if tok.type in ("_NL", "_INDENT", "_DEDENT"):
            continue
        yield tok.type, str(tok), tok.line or 0, tok.column or 0


@cache
def keyword_terminals() -> frozenset[str]:
    return frozenset(
        t.name
        for t in parser().terminals
        if t.pattern.type == "str" and str(t.pattern.value).isalpha()
    )


def _where(name: str, line: int, column: int, word: str, scopes: tuple[str, ...]) -> str:
    return f"{name}:{line}:{column} {word!r}: {' '.join(scopes[1:]) or '(no scope)'}"


def _names_a_field(text: str, line: int, column: int, word: str) -> bool:
    """Whether the keyword is a field's name (`with journey = "…"` on a test's
    `track` line, as the delivery events' properties are named): a name there, which
    the TextMate grammar scopes as a variable, as it should."""
    rest = text.splitlines()[line - 1][column - 1 + len(word) :]
    return re.match(r"\s*=(?!=)", rest) is not None


def test_every_keyword_gets_a_keyword_scope() -> None:
    texts, tokens = tokenized()
    wrong: list[str] = []
    seen: set[str] = set()
    for name, text in texts.items():
        for kind, word, line, column in lexed(text):
            if kind not in keyword_terminals():
                continue
            seen.add(word)
            if _names_a_field(text, line, column, word):
                continue
            scopes = scopes_at(tokens, texts, name, line, column)
            wanted = "constant.language" if word in CONSTANT_WORDS else "keyword."
            if not any(s.startswith(wanted) for s in scopes):
                wrong.append(_where(name, line, column, word, scopes))
    assert wrong == [], "keywords the TextMate grammar does not scope as keywords"
    # The examples use every keyword of the language, so each one was checked. A new
    # keyword in grammar/journey.lark needs a place in the TextMate grammar's keyword
    # lists, and an example (docs/language.md) that uses it.
    assert sorted(reserved_words() - seen) == [], "keywords no example uses"


LITERALS = {
    "DURATION": "constant.numeric.duration.journey",
    "TIME": "constant.numeric.time.journey",
    "PERCENT": "constant.numeric.percent.journey",
    "NUMBER": "constant.numeric.journey",
    "STRING": "string.quoted.double.journey",
}


def test_literals_get_their_scopes() -> None:
    texts, tokens = tokenized()
    wrong: list[str] = []
    counts = dict.fromkeys(LITERALS, 0)
    for name, text in texts.items():
        for kind, word, line, column in lexed(text):
            if kind not in LITERALS:
                continue
            counts[kind] += 1
            # Every character of the literal, not just its first.
            for i in range(len(word)):
                scopes = scopes_at(tokens, texts, name, line, column + i)
                if LITERALS[kind] not in scopes:
                    wrong.append(_where(name, line, column + i, word, scopes))
                    break
    assert wrong == []
    assert all(n > 5 for n in counts.values()), counts


def test_comments_get_a_comment_scope() -> None:
    texts, tokens = tokenized()
    wrong: list[str] = []
    total = 0
    for name, text in texts.items():
        for c in scan_comments(text):
            total += 1
            for i in (0, len(c.text) - 1):
                scopes = scopes_at(tokens, texts, name, c.line, c.column + i)
                if "comment.line.number-sign.journey" not in scopes:
                    wrong.append(_where(name, c.line, c.column + i, c.text, scopes))
    assert wrong == []
    assert total > 20


def test_channels_and_declared_names_get_their_scopes() -> None:
    texts, tokens = tokenized()
    wrong: list[str] = []
    wanted: list[tuple[str, int, int, str, str]] = []
    for name, text in texts.items():
        tree = parse_source(text, name).tree
        assert tree is not None, name
        for node in ast.walk(tree):
            if isinstance(node, ast.Target | ast.Part):
                wanted.append(
                    (
                        name,
                        node.span.line,
                        node.span.column,
                        node.channel,
                        "support.type.channel.journey",
                    )
                )
            elif isinstance(node, ast.Message):
                s = node.name_span
                wanted.append(
                    (name, s.line, s.column, node.name, "entity.name.type.message.journey")
                )
            elif isinstance(node, ast.Segment):
                s = node.name_span
                wanted.append(
                    (name, s.line, s.column, node.name, "entity.name.type.segment.journey")
                )
            elif isinstance(node, ast.Label):
                s = node.span
                wanted.append((name, s.line, s.column, node.name, "entity.name.label.step.journey"))
            elif isinstance(node, ast.MessageRef) and node.name is not None:
                s = node.span
                wanted.append(
                    (name, s.line, s.column, node.name, "variable.other.constant.message.journey")
                )
    for name, line, column, word, scope in wanted:
        scopes = scopes_at(tokens, texts, name, line, column)
        if scope not in scopes:
            wrong.append(_where(name, line, column, word, scopes))
    assert wrong == []
    kinds = {w[4] for w in wanted}
    assert len(kinds) == 5


def unscoped(texts: dict[str, str], tokens: Tokens) -> list[str]:
    """Every character that is not whitespace and got no scope of its own, or an
    ``invalid`` one: what a tokenization error looks like in TextMate."""
    bad: list[str] = []
    for name, text in texts.items():
        for n, (line, line_tokens) in enumerate(zip(text.split("\n"), tokens[name], strict=True)):
            units = line.encode("utf-16-le")
            for t in line_tokens:
                piece = units[2 * t.start : 2 * t.end].decode("utf-16-le")
                if not piece.strip():
                    continue
                if len(t.scopes) < 2 or any(s.startswith("invalid") for s in t.scopes):
                    bad.append(_where(name, n + 1, t.start + 1, piece, t.scopes))
    return bad


def test_no_line_of_the_examples_has_a_tokenization_error() -> None:
    texts, tokens = tokenized()
    assert len(texts) > 40
    assert unscoped(texts, tokens) == []


def test_errors_are_marked_invalid() -> None:
    # The check above can fail: a bad duration, an unknown escape and a stray
    # character are marked.
    texts = {
        "bad": 'journey j\n  when x\n  wait 30x\n  send push "a \\q b"\n  set a = 1 ;\n',
    }
    bad = unscoped(texts, tokenize(texts))
    assert [b.split(" ")[1] for b in bad] == ["'30x':", "'\\\\q':", "';':"]


# ---------------------------------------------------------------- the extension's manifest

EXTENSION = ROOT / "editors" / "vscode"


def test_extension_manifest_wires_language_grammar_and_server() -> None:
    manifest = json.loads((EXTENSION / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["extensions"] == [".journey"]
    assert (EXTENSION / language["configuration"]).is_file()
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["language"] == language["id"]
    assert (
        json.loads((EXTENSION / grammar["path"]).read_text())["scopeName"] == grammar["scopeName"]
    )
    assert "vscode-languageclient" in manifest["dependencies"]
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["journeyc.server.command"]["default"] == ["journeyc", "lsp"]
    client = (EXTENSION / manifest["main"]).read_text()
    assert 'language: "journey"' in client and '"server.command"' in client


def test_indentation_rules_indent_after_every_block_header() -> None:
    config = json.loads((EXTENSION / "language-configuration.json").read_text())
    increase = re.compile(config["indentationRules"]["increaseIndentPattern"])
    decrease = re.compile(config["indentationRules"]["decreaseIndentPattern"])
    missed: list[str] = []
    for name, text in examples().items():
        lines = [
            line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")
        ]
        for line, after in itertools.pairwise(lines):
            deeper = len(after) - len(after.lstrip()) > len(line) - len(line.lstrip())
            if deeper != bool(increase.search(line)):
                missed.append(f"{name}: {line.strip()!r} then {after.strip()!r}")
    assert missed == []
    assert decrease.search("  else") and decrease.search("  elif x > 1")
    assert not decrease.search("  send push m")
