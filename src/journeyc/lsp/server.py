"""The language server: pygls over stdio.

Every request reads the project of its document afresh (:mod:`journeyc.lsp.projects`:
files on disk, the editor's open documents in their place; a file's parse is reused
while its text is unchanged). Diagnostics are the checker's, for the whole project,
published ``DEBOUNCE`` seconds after the last change (at once when a document opens
or is saved), for every file of the project: an edit in one file can fix or break
another (a message renamed, a segment removed).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from journeyc import __version__
from journeyc.lang import ast
from journeyc.lang.diagnostics import Diagnostic, Severity
from journeyc.lang.formatter import FormatError, format_source
from journeyc.lang.project import SUFFIX
from journeyc.lang.span import Span
from journeyc.lsp.completion import Names, complete
from journeyc.lsp.hover import hover
from journeyc.lsp.index import Index, Kind, Occurrence
from journeyc.lsp.positions import LineIndex
from journeyc.lsp.projects import Projects, Snapshot
from journeyc.lsp.symbols import document_symbols

log = logging.getLogger(__name__)

# Seconds after the last change before the project is checked again: long enough not
# to check on every keystroke, short enough to feel immediate.
DEBOUNCE = 0.3


def uri_to_path(uri: str) -> Path | None:
    """The file a ``file:`` URI names, or None for another scheme."""
    parts = urlparse(uri)
    if parts.scheme != "file":
        return None
    return Path(unquote(parts.path)).resolve()


def severity(d: Diagnostic) -> types.DiagnosticSeverity:
    """The LSP severity of a diagnostic."""
    if d.severity is Severity.ERROR:
        return types.DiagnosticSeverity.Error
    return types.DiagnosticSeverity.Warning


def message_text(d: Diagnostic) -> str:
    """A diagnostic's text as an editor shows it: the summary, the label beside the
    carets, the note, and each hint as a ``help:`` line (as ``journeyc validate``)."""
    lines = [d.summary + (f": {d.label}" if d.label else "")]
    if d.detail:
        lines.append(f"note: {d.detail}")
    lines += [f"help: {h}" for h in d.hints]
    return "\n".join(lines)


class JourneyServer(LanguageServer):
    """The journeyc language server."""

    def __init__(self, debounce: float = DEBOUNCE) -> None:
        super().__init__("journeyc", __version__)
        self.debounce = debounce
        self.projects = Projects()
        # Per project root: the check waiting for the editor to go quiet.
        self.pending: dict[Path, asyncio.Task[None]] = {}
        # Per project root: the URIs diagnostics were published for (to clear them).
        self.published: dict[Path, set[str]] = defaultdict(set)
        # The URI the editor uses for each open file (answers use its spelling).
        self.uris: dict[Path, str] = {}

    # ------------------------------------------------------------ documents
    def open_texts(self) -> dict[Path, str]:
        """The open documents' text, by file."""
        out: dict[Path, str] = {}
        for uri in list(self.workspace.text_documents):
            path = uri_to_path(uri)
            if path is not None:
                out[path] = self.workspace.get_text_document(uri).source
                self.uris[path] = uri
        return out

    def uri(self, file: str) -> str:
        """The URI of a file named in spans (an absolute path)."""
        path = Path(file)
        return self.uris.get(path) or path.as_uri()

    def snapshot(self, uri: str) -> Snapshot | None:
        """The project of a document, as the editor has it now."""
        path = uri_to_path(uri)
        if path is None:
            return None
        self.sync_folders()
        return self.projects.load(path, self.open_texts())

    def sync_folders(self) -> None:
        """Take the client's workspace folders (they bound projects)."""
        self.projects.folders = [
            p for f in self.workspace.folders.values() if (p := uri_to_path(f.uri)) is not None
        ]

    def lines(self, text: str) -> LineIndex:
        """Offsets ↔ positions of ``text`` in the negotiated encoding."""
        encoding = self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        return LineIndex(text, str(encoding))

    # ------------------------------------------------------------ diagnostics
    def schedule(self, uri: str, delay: float) -> None:
        """Check the project of ``uri`` after ``delay`` seconds of quiet."""
        path = uri_to_path(uri)
        if path is None:
            return
        self.sync_folders()
        snap_root = self.projects.root_of(path)
        waiting = self.pending.pop(snap_root, None)
        if waiting is not None:
            waiting.cancel()
        self.pending[snap_root] = asyncio.ensure_future(self._check_later(uri, snap_root, delay))

    async def _check_later(self, uri: str, root: Path, delay: float) -> None:
        await asyncio.sleep(delay)
        self.pending.pop(root, None)
        try:
            self.publish(uri)
        except Exception:  # the editor must keep its server whatever the checker does
            log.exception("checking %s failed", uri)

    def publish(self, uri: str) -> None:
        """Check the project of ``uri`` and publish every file's diagnostics."""
        snap = self.snapshot(uri)
        if snap is None:
            return
        by_file: dict[str, list[Diagnostic]] = defaultdict(list)
        for d in snap.check():
            by_file[d.span.file].append(d)
        sources = snap.project.sources
        now: set[str] = set()
        for file in {*(f.path for f in snap.files), *by_file}:
            text = sources.get(file, "")
            lines = self.lines(text)
            file_uri = self.uri(file)
            now.add(file_uri)
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(
                    uri=file_uri,
                    diagnostics=[self.diagnostic(d, lines) for d in by_file.get(file, [])],
                )
            )
        for gone in self.published[snap.root] - now:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=gone, diagnostics=[])
            )
        self.published[snap.root] = now

    def diagnostic(self, d: Diagnostic, lines: LineIndex) -> types.Diagnostic:
        """One diagnostic in LSP terms. Its hints go in the message, as ``help:`` lines:
        every client shows the message, not every one shows related information (and
        a hint has no place of its own to point at)."""
        return types.Diagnostic(
            range=lines.range(d.span),
            severity=severity(d),
            code=d.code,
            source="journeyc",
            message=message_text(d),
        )

    # ------------------------------------------------------------ navigation
    def locate(self, uri: str, position: types.Position) -> tuple[Snapshot, str, int] | None:
        """The project, file name and offset of a position in a document."""
        snap = self.snapshot(uri)
        path = uri_to_path(uri)
        if snap is None or path is None:
            return None
        f = snap.file(path)
        if f is None:
            return None
        return snap, f.path, self.lines(f.text).offset(position)

    def symbol(self, snap: Snapshot, index: Index, file: str, offset: int) -> Occurrence | None:
        """The name under the cursor. In a file that does not parse, the word under
        the cursor, when a message or segment of the project is called so."""
        f = snap.file(Path(file))
        if f is not None and f.tree is not None:
            return index.at(file, offset)
        text = f.text if f is not None else ""
        start = offset
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
        end = offset
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        word = text[start:end]
        for kind in (Kind.MESSAGE, Kind.SEGMENT):
            if word in index.names(kind):
                return Occurrence(kind, word, "", Span.point(file, text, start, end - start), False)
        return None

    def location(self, snap: Snapshot, occ: Occurrence) -> types.Location:
        """Where an occurrence is, for the editor."""
        text = snap.index_texts.get(occ.span.file, "")
        return types.Location(uri=self.uri(occ.span.file), range=self.lines(text).range(occ.span))


server = JourneyServer()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: JourneyServer, params: types.DidOpenTextDocumentParams) -> None:
    """Check the project of a document as it opens."""
    ls.schedule(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: JourneyServer, params: types.DidChangeTextDocumentParams) -> None:
    """Check again once the typing stops."""
    ls.schedule(params.text_document.uri, ls.debounce)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: JourneyServer, params: types.DidSaveTextDocumentParams) -> None:
    """Check again at once."""
    ls.schedule(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: JourneyServer, params: types.DidCloseTextDocumentParams) -> None:
    """The file on disk replaces the closed document's text: check again."""
    ls.uris.pop(uri_to_path(params.text_document.uri) or Path(), None)
    ls.schedule(params.text_document.uri, 0)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_files(ls: JourneyServer, params: types.DidChangeWatchedFilesParams) -> None:
    """Files changed on disk (a checkout, ``journeyc fmt``): check their projects."""
    for change in params.changes:
        if change.uri.endswith(SUFFIX):
            ls.schedule(change.uri, ls.debounce)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: JourneyServer, params: types.HoverParams) -> types.Hover | None:
    """A message's parts, a segment's definition, a step's IR node, a signature."""
    found = ls.locate(params.text_document.uri, params.position)
    if found is None:
        return None
    snap, file, offset = found
    f = snap.file(Path(file))
    tree: ast.SourceFile | None = f.tree if f is not None else None
    result = hover(snap.index(), snap.index_texts, tree, file, offset, snap.texts[file])
    if result is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=result.markdown),
        range=ls.lines(snap.texts.get(file, "")).range(result.span),
    )


def _symbol_at(
    ls: JourneyServer, uri: str, position: types.Position
) -> tuple[Snapshot, Index, Occurrence] | None:
    """The project snapshot, its index and the named thing at ``position``."""
    found = ls.locate(uri, position)
    if found is None:
        return None
    snap, file, offset = found
    index = snap.index()
    occ = ls.symbol(snap, index, file, offset)
    return None if occ is None else (snap, index, occ)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: JourneyServer, params: types.DefinitionParams) -> list[types.Location]:
    """Where the message, segment or step under the cursor is declared."""
    at = _symbol_at(ls, params.text_document.uri, params.position)
    if at is None:
        return []
    snap, index, occ = at
    return [ls.location(snap, o) for o in index.definitions(occ)]


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def on_references(ls: JourneyServer, params: types.ReferenceParams) -> list[types.Location]:
    """Every place the name under the cursor is declared or used, in the project."""
    at = _symbol_at(ls, params.text_document.uri, params.position)
    if at is None:
        return []
    snap, index, occ = at
    refs = index.references(occ, params.context.include_declaration)
    return [ls.location(snap, o) for o in refs]


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=[" "]),
)
def on_completion(ls: JourneyServer, params: types.CompletionParams) -> types.CompletionList:
    """Keywords valid at the cursor and the project's names."""
    found = ls.locate(params.text_document.uri, params.position)
    if found is None:
        return types.CompletionList(is_incomplete=False, items=[])
    snap, file, offset = found
    index = snap.index()
    names = Names(
        messages=index.names(Kind.MESSAGE),
        segments=index.names(Kind.SEGMENT),
        events=sorted(index.events),
    )
    items = complete(snap.texts.get(file, ""), offset, names)
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(
    ls: JourneyServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol]:
    """The outline: journeys and their steps, messages and their parts, segments."""
    path = uri_to_path(params.text_document.uri)
    snap = ls.snapshot(params.text_document.uri)
    f = snap.file(path) if snap is not None and path is not None else None
    if f is None or f.tree is None:
        return []
    return document_symbols(f.tree, ls.lines(f.text))


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def on_formatting(
    ls: JourneyServer, params: types.DocumentFormattingParams
) -> list[types.TextEdit]:
    """The whole document in ``journeyc fmt`` layout; no edits while it has errors."""
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    path = uri_to_path(uri)
    text: str = doc.source
    try:
        formatted = format_source(text.replace("\r\n", "\n"), str(path or uri))
    except FormatError:
        return []
    if formatted == text:
        return []
    whole = ls.lines(text).range(Span.point(str(path), text, 0, len(text)))
    return [types.TextEdit(range=whole, new_text=formatted)]


def serve() -> None:
    """Run the server on standard input and output until the client ends it."""
    server.start_io()
