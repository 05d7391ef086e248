"""`journeyc lsp` driven by a real LSP client over stdio (pygls's LanguageClient).

One session against a two-file project in a temporary directory: open a document,
edit an error in, see the diagnostic with its code and range, fix it and see it
clear, then hover, definition (across files), references, completion, formatting.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from journeyc.lsp.completion import Names, complete
from journeyc.lsp.hover import hover
from journeyc.lsp.index import Index, Kind
from journeyc.lsp.positions import LineIndex
from journeyc.lsp.projects import Projects, project_root

MESSAGES = """\
message cart_reminder
  push
    title "Your cart"
    body "Still there, {{ user.first_name }}?"
  email
    subject "Your cart is waiting"
    html "<p>Come back</p>"

segment big_spender = sum(order_completed.amount within 90d) > 500
"""

CART = """\
journey cart
  when cart_abandoned
  exit when order_completed

  wait 30m as first_wait
  if segment big_spender and days_since(last(order_completed).at) < 30
    send push cart_reminder
  else
    send email cart_reminder
"""

# Seconds to wait for one answer or notification: far more than it takes (well under
# a second), so that a loaded machine does not fail the test; only a hung server does.
TIMEOUT = 30.0

Diagnostics = dict[str, list[types.Diagnostic]]


class Session:
    """A client talking to `python -m journeyc lsp`, collecting published diagnostics."""

    def __init__(self) -> None:
        self.client = LanguageClient("journeyc-test", "1")
        self.diagnostics: Diagnostics = {}
        self.changed = asyncio.Condition()
        self.versions: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        async def published(params: types.PublishDiagnosticsParams) -> None:
            async with self.changed:
                self.diagnostics[params.uri] = list(params.diagnostics)
                self.changed.notify_all()

    async def wait_for(
        self, uri: str, test: Callable[[list[types.Diagnostic]], bool]
    ) -> list[types.Diagnostic]:
        """The diagnostics of ``uri`` once they pass ``test``."""

        def ready() -> bool:
            return uri in self.diagnostics and test(self.diagnostics[uri])

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(ready), TIMEOUT)
        return self.diagnostics[uri]

    def open(self, uri: str, text: str) -> None:
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="journey", version=1, text=text
                )
            )
        )

    def change(self, uri: str, text: str) -> None:
        """Replace the document's text (a full-text change, as some editors send)."""
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def edit(self, uri: str, line: int, start: int, end: int, new: str) -> None:
        """An incremental change of one line's characters ``start``..``end``."""
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=start),
                            end=types.Position(line=line, character=end),
                        ),
                        text=new,
                    )
                ],
            )
        )


def pos(text: str, needle: str, after: int = 0) -> types.Position:
    """The position of ``needle`` (plus ``after`` characters) in ``text``."""
    offset = text.index(needle) + after
    return LineIndex(text).position(offset)


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def _session(root: Path) -> None:
    (root / "messages.journey").write_text(MESSAGES)
    (root / "cart.journey").write_text(CART)
    cart_uri = (root / "cart.journey").as_uri()
    msg_uri = (root / "messages.journey").as_uri()

    s = Session()
    await s.client.start_io(sys.executable, "-m", "journeyc", "lsp")
    try:
        init = await s.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="project")],
            )
        )
        caps = init.capabilities
        assert caps.hover_provider and caps.definition_provider and caps.references_provider
        assert caps.completion_provider is not None and caps.document_formatting_provider
        assert caps.document_symbol_provider
        s.client.initialized(types.InitializedParams())

        # Opening a document checks its project: both files, clean.
        s.open(cart_uri, CART)
        assert await s.wait_for(cart_uri, lambda d: d == []) == []
        assert await s.wait_for(msg_uri, lambda d: d == []) == []

        # A typo in a message name: the checker's diagnostic, code and range.
        line = CART.splitlines().index("    send push cart_reminder")
        s.edit(
            cart_uri,
            line,
            len("    send push "),
            len("    send push cart_reminder"),
            "cart_remindr",
        )
        found = await s.wait_for(cart_uri, lambda d: len(d) > 0)
        assert [d.code for d in found] == ["unknown_message"]
        (bad,) = found
        assert bad.severity == types.DiagnosticSeverity.Error
        assert bad.range == types.Range(
            start=types.Position(line=line, character=14),
            end=types.Position(line=line, character=14 + len("cart_remindr")),
        )
        assert "did you mean `cart_reminder`?" in bad.message
        assert "help: declare it with `message NAME`" in bad.message
        # Fixed: the diagnostic clears.
        s.change(cart_uri, CART)
        assert await s.wait_for(cart_uri, lambda d: d == []) == []

        # Unsaved text of another file counts: renaming the message in messages.journey
        # (never saved) breaks both sends of cart.journey.
        s.open(msg_uri, MESSAGES)
        s.change(msg_uri, MESSAGES.replace("message cart_reminder", "message cart_nudge"))
        broken = await s.wait_for(cart_uri, lambda d: len(d) == 2)
        assert {d.code for d in broken} == {"unknown_message"}
        s.change(msg_uri, MESSAGES)
        assert await s.wait_for(cart_uri, lambda d: d == []) == []

        # A syntax error: the parser's code, at its line.
        s.change(cart_uri, CART.replace("wait 30m", "wait 30x"))
        found = await s.wait_for(cart_uri, lambda d: len(d) > 0)
        assert [d.code for d in found] == ["bad_duration"]
        assert found[0].range.start.line == 4
        s.change(cart_uri, CART)
        await s.wait_for(cart_uri, lambda d: d == [])

        # Hover: a message's parts and fields, a segment's definition, a step's IR
        # node, a function's signature.
        h = await s.client.text_document_hover_async(
            types.HoverParams(text_document=doc(cart_uri), position=pos(CART, "cart_reminder", 3))
        )
        assert h is not None and isinstance(h.contents, types.MarkupContent)
        assert "message** `cart_reminder`" in h.contents.value
        assert "`push` (title, body)" in h.contents.value
        assert "`email` (subject, html)" in h.contents.value

        h = await s.client.text_document_hover_async(
            types.HoverParams(text_document=doc(cart_uri), position=pos(CART, "big_spender", 2))
        )
        assert h is not None and isinstance(h.contents, types.MarkupContent)
        assert "segment big_spender = sum(order_completed.amount within 90d) > 500" in (
            h.contents.value
        )

        h = await s.client.text_document_hover_async(
            types.HoverParams(text_document=doc(cart_uri), position=pos(CART, "wait 30m", 1))
        )
        assert h is not None and isinstance(h.contents, types.MarkupContent)
        assert "step** `first_wait`" in h.contents.value
        assert '"kind": "wait"' in h.contents.value and '"seconds": 1800' in h.contents.value
        assert '"next": "2"' in h.contents.value

        h = await s.client.text_document_hover_async(
            types.HoverParams(text_document=doc(cart_uri), position=pos(CART, "days_since", 4))
        )
        assert h is not None and isinstance(h.contents, types.MarkupContent)
        assert "days_since(timestamp) -> number" in h.contents.value

        # Definition, across the two files.
        defs = await s.client.text_document_definition_async(
            types.DefinitionParams(text_document=doc(cart_uri), position=pos(CART, "cart_reminder"))
        )
        assert isinstance(defs, list) and len(defs) == 1
        assert isinstance(defs[0], types.Location)
        assert defs[0].uri == msg_uri
        assert defs[0].range == types.Range(
            start=types.Position(line=0, character=8), end=types.Position(line=0, character=21)
        )
        seg_defs = await s.client.text_document_definition_async(
            types.DefinitionParams(text_document=doc(cart_uri), position=pos(CART, "big_spender"))
        )
        assert isinstance(seg_defs, list) and [d.uri for d in seg_defs] == [msg_uri]
        assert isinstance(seg_defs[0], types.Location)
        assert seg_defs[0].range.start == pos(MESSAGES, "big_spender")

        # References: the declaration and both sends.
        refs = await s.client.text_document_references_async(
            types.ReferenceParams(
                text_document=doc(msg_uri),
                position=pos(MESSAGES, "cart_reminder"),
                context=types.ReferenceContext(include_declaration=True),
            )
        )
        assert refs is not None
        assert sorted((r.uri, r.range.start.line) for r in refs) == sorted(
            [(msg_uri, 0), (cart_uri, 6), (cart_uri, 8)]
        )

        # The outline: the journey and its steps, named as the compiler names them.
        outline = await s.client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=doc(cart_uri))
        )
        assert outline is not None
        (journey,) = outline
        assert isinstance(journey, types.DocumentSymbol) and journey.name == "cart"
        assert [(c.name, c.detail) for c in journey.children or []] == [
            ("first_wait", "wait"),
            ("2", "branch"),
        ]
        branch = (journey.children or [])[1]
        assert [c.name for c in branch.children or []] == ["2.1.1", "2.2.1"]

        # Completion: channels after `send`, messages after a channel, keywords at the
        # start of a journey's line, functions in a condition.
        extra = CART + "  send \n"
        s.change(cart_uri, extra)
        end = types.Position(line=len(extra.splitlines()) - 1, character=len("  send "))
        items = await s.client.text_document_completion_async(
            types.CompletionParams(text_document=doc(cart_uri), position=end)
        )
        assert isinstance(items, types.CompletionList)
        assert {"push", "email", "sms", "whatsapp", "inapp", "webhook"} <= {
            i.label for i in items.items
        }
        extra = CART + "  send push c\n"
        s.change(cart_uri, extra)
        end = types.Position(line=len(extra.splitlines()) - 1, character=len("  send push c"))
        items = await s.client.text_document_completion_async(
            types.CompletionParams(text_document=doc(cart_uri), position=end)
        )
        assert isinstance(items, types.CompletionList)
        assert "cart_reminder" in {i.label for i in items.items}
        s.change(cart_uri, CART)

        # Formatting through fmt: a messy layout gets one edit to the canonical text...
        messy = (
            "journey cart\n    when   cart_abandoned\n    wait 90m\n    send push cart_reminder\n"
        )
        s.change(cart_uri, messy)
        edits = await s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=doc(cart_uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
        assert edits is not None and len(edits) == 1
        assert edits[0].new_text == (
            "journey cart\n  when cart_abandoned\n  wait 1h30m\n  send push cart_reminder\n"
        )
        assert edits[0].range.start == types.Position(line=0, character=0)
        assert edits[0].range.end == types.Position(line=4, character=0)
        # ... and a document with a syntax error gets none.
        s.change(cart_uri, messy.replace("wait 90m", "wait for"))
        edits = await s.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=doc(cart_uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
        assert edits is not None and list(edits) == []
        # While the document does not parse, the word under the cursor still leads to
        # its declaration in another file.
        broken = messy.replace("wait 90m", "wait for")
        defs = await s.client.text_document_definition_async(
            types.DefinitionParams(
                text_document=doc(cart_uri), position=pos(broken, "cart_reminder", 2)
            )
        )
        assert isinstance(defs, list) and [d.uri for d in defs] == [msg_uri]

        await s.client.shutdown_async(None)
        s.client.exit(None)
        await asyncio.wait_for(s.client.stop(), TIMEOUT)
        server = s.client._server
        assert server is not None and server.returncode == 0
    finally:
        server = s.client._server  # ended by `exit`; killed when the test failed early
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()


@pytest.mark.e2e
def test_lsp_session(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_session(tmp_path), 4 * TIMEOUT))


def test_lsp_help() -> None:
    from click.testing import CliRunner

    from journeyc.cli import main

    result = CliRunner().invoke(main, ["lsp", "--help"])
    assert result.exit_code == 0
    assert "Language Server Protocol" in result.output
    assert "Exit codes" in result.output


# ---------------------------------------------------------------- completion contexts

NAMES = Names(messages=["cart_reminder", "welcome"], segments=["hero", "vip"], events=["signed_up"])


def labels(text: str) -> set[str]:
    """The completion labels at the ``|`` in ``text``."""
    offset = text.index("|")
    return {i.label for i in complete(text.replace("|", "", 1), offset, NAMES)}


def test_completion_line_starts() -> None:
    top = labels("|")
    assert {"journey", "message", "segment", "when", "send"} <= top
    in_journey = labels("journey j\n  when signed_up\n  |")
    assert {"when", "entry", "goal", "wait", "send", "if", "split"} <= in_journey
    assert "journey" not in in_journey
    in_branch = labels("journey j\n  if vip\n    |")
    assert {"send", "wait", "exit"} <= in_branch and "when" not in in_branch
    after_if = labels("journey j\n  if vip\n    exit\n  |")
    assert {"elif", "else", "send"} <= after_if
    assert {"elif", "else"} <= labels("when x\nif vip\n  exit\n|")
    assert "else" not in labels("when x\nwait 1d\n|")
    assert labels("journey j\n  wait for x up to 1d\n    |") == {"on"}
    assert labels("message m\n  |") >= {"push", "email", "sms"}
    assert labels("message m\n  push\n    |") == {"title", "body", "image", "deeplink", "data"}


def test_completion_after_words() -> None:
    assert labels("send |") >= {"push", "email"}
    assert labels("send push or |") >= {"email", "sms"}
    assert labels("send push |") == {"cart_reminder", "welcome", "or"}
    assert labels("send push we|") == {"cart_reminder", "welcome", "or"}
    assert labels("when entering |") == {"hero", "vip"}
    assert labels("every day at 10:00 for |") == {"hero", "vip", "everyone"}
    assert labels("wait |") == {"until", "for"}
    assert labels("entry |") == {"once", "always"}
    assert labels("quiet |") == {"hours"}
    assert labels("wait until 09:00 on |") >= {"monday", "weekend"}
    assert labels("journey j\n  wait for cart_viewed up to 1d\n    on |") == {
        "timeout",
        "cart_viewed",
    }
    cond = labels("if |")
    assert {"days_since", "count", "exists", "segment", "not", "user", "event"} <= cond
    assert labels("if segment |") >= {"hero", "vip"}
    assert labels('send push "Hi |') == set()  # in a string
    assert labels("wait 1d # comment |") == set()


# ---------------------------------------------------------------- projects and positions


def test_project_root_grows_over_directories_with_journeys(tmp_path: Path) -> None:
    (tmp_path / "journeys" / "messages").mkdir(parents=True)
    (tmp_path / "tests").mkdir()
    for f in ("journeys/a.journey", "journeys/messages/m.journey", "tests/t.journey"):
        (tmp_path / f).write_text("")
    nested = tmp_path / "journeys" / "messages" / "m.journey"
    # journeys/ holds journeys of its own: it is the project of messages/m.journey.
    assert project_root(nested, [tmp_path]) == tmp_path / "journeys"
    # The checkout root holds none, so tests/ is not part of that project.
    assert project_root(tmp_path / "journeys" / "a.journey", [tmp_path]) == tmp_path / "journeys"
    # The workspace folder bounds a project even when its parent holds journeys.
    (tmp_path / "x.journey").write_text("")
    assert project_root(tmp_path / "journeys" / "a.journey", [tmp_path / "journeys"]) == (
        tmp_path / "journeys"
    )
    assert project_root(tmp_path / "journeys" / "a.journey", [tmp_path]) == tmp_path


def test_positions_count_utf16_units() -> None:
    text = 'send push "😀 hi" as x\nwait 1d\n'
    index = LineIndex(text)
    offset = text.index("as")
    assert index.position(offset) == types.Position(line=0, character=offset + 1)
    assert index.offset(types.Position(line=0, character=offset + 1)) == offset
    assert index.position(text.index("1d")) == types.Position(line=1, character=5)
    utf8 = LineIndex(text, types.PositionEncodingKind.Utf8)
    assert utf8.position(offset) == types.Position(line=0, character=offset + 3)


# ---------------------------------------------------------------- index and hover, in process


def test_index_and_hover(tmp_path: Path) -> None:
    (tmp_path / "messages.journey").write_text(MESSAGES)
    cart = tmp_path / "cart.journey"
    cart.write_text(CART)
    snap = Projects(folders=[tmp_path]).load(cart, {})
    index = Index.build(snap.trees, snap.texts)
    file = str(cart.resolve())
    tree = snap.file(cart.resolve())
    assert tree is not None and tree.tree is not None

    def hover_at(needle: str, after: int = 0) -> str:
        found = hover(index, snap.texts, tree.tree, file, CART.index(needle) + after, CART)
        assert found is not None, needle
        return found.markdown

    # Step names: the label is the definition, and hovering it shows the node.
    label = index.at(file, CART.index("first_wait"))
    assert label is not None and label.kind is Kind.STEP and label.scope == "cart"
    assert index.definitions(label) == [label]
    assert "step** `first_wait`" in hover_at("first_wait")
    # A segment used in a condition: declared in the other file, used once.
    seg = index.at(file, CART.index("big_spender"))
    assert seg is not None
    refs = index.references(seg)
    assert [(Path(r.span.file).name, r.definition) for r in refs] == [
        ("cart.journey", False),
        ("messages.journey", True),
    ]
    assert [r.span.file for r in index.references(seg, include_declaration=False)] == [file]
    assert "fields: `title`, `body`" in hover_at("send push", len("send p"))
    assert "**journey** `cart`" in hover_at("journey cart", len("journey c"))
    assert "days_since(timestamp) -> number" in hover_at("days_since")
    assert "**clause** `exit when EVENT [where EXPR]`" in hover_at("exit when", 2)
    assert "last(EVENT [where CONDITION] [within DURATION]) -> event" in hover_at("last(")
    # The branch step, hovered on its `if`: a branch node with both blocks.
    branch = hover_at("if segment")
    assert '"kind": "branch"' in branch and "step** `2`" in branch
    assert sorted(index.events) == ["cart_abandoned", "order_completed"]


def test_a_document_that_does_not_parse_keeps_the_project_navigable(tmp_path: Path) -> None:
    (tmp_path / "messages.journey").write_text(MESSAGES)
    cart = (tmp_path / "cart.journey").resolve()
    cart.write_text(CART)
    projects = Projects(folders=[tmp_path])
    projects.load(cart, {})  # a good parse first
    broken = CART + "  send push (\n"
    snap = projects.load(cart, {cart: broken})
    f = snap.file(cart)
    assert f is not None and f.tree is None
    assert [d.code for d in snap.check()] == ["journey_parse_error"]
    # Its last good parse stands in for it, with the text its spans point into.
    assert snap.stale[str(cart)][0] == CART
    assert snap.index_texts[str(cart)] == CART
    index = snap.index()
    (label,) = [o for o in index.occurrences if o.name == "first_wait"]
    assert CART[label.span.start : label.span.end] == "first_wait"
    found = hover(index, snap.index_texts, None, str(cart), broken.index("days_since") + 1, broken)
    assert found is not None and "days_since(timestamp)" in found.markdown


def test_a_file_outside_the_workspace_is_a_project_of_its_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.journey").write_text("journey other\n  when x\n  exit\n")
    lone = tmp_path / "lone.journey"
    lone.write_text(CART)
    snap = Projects().load(lone, {})
    assert [Path(f.path).name for f in snap.project.files] == ["lone.journey"]
    inside = Projects(folders=[tmp_path]).load(lone, {})
    assert [Path(f.path).name for f in inside.project.files] == ["lone.journey", "other.journey"]


def test_test_files_are_checked_as_validate_checks_them(tmp_path: Path) -> None:
    # A `*.test.journey` file is not part of the project (validate, docs/testing.md):
    # the editor shows its checks against the project, and a `test` block in a
    # journey file is an error, as `journeyc validate` says.
    (tmp_path / "messages.journey").write_text(MESSAGES)
    cart = (tmp_path / "cart.journey").resolve()
    cart.write_text(CART)
    tests = (tmp_path / "cart.test.journey").resolve()
    tests.write_text(
        'test "reminder"\n  profile ana\n  track cart_abandoned for ana at +0\n'
        "  expect send push cart_reminder to zed\n"
        "  expect enter nosuch for ana\n"
    )
    projects = Projects(folders=[tmp_path])
    snap = projects.load(tests, {})
    assert str(tests) not in {f.path for f in snap.project.files}
    codes = {(Path(d.span.file).name, d.code) for d in snap.check()}
    assert ("cart.test.journey", "unknown_test_user") in codes
    assert ("cart.test.journey", "unknown_journey") in codes
    f = snap.file(tests)
    assert f is not None and f.tree is not None and str(tests) in snap.texts
    # A test block in a journey file.
    snap = projects.load(cart, {cart: CART + '\ntest "misplaced"\n  profile ana\n'})
    assert "test_outside_test_file" in {d.code for d in snap.check()}
    # A test file that does not parse does not hide the project's own diagnostics.
    snap = projects.load(
        tests, {tests: 'test "x\n', cart: CART.replace("cart_reminder", "cart_remindr", 1)}
    )
    codes = {d.code for d in snap.check()}
    assert "unterminated_string" in codes and "unknown_message" in codes
