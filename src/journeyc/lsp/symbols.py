"""The outline of a document: its journeys with their steps, messages with their
parts, and segments (``textDocument/documentSymbol``)."""

from __future__ import annotations

from lsprotocol import types

from journeyc.compile.lower import lower_journey
from journeyc.lang import ast
from journeyc.lang.span import Span
from journeyc.lsp.positions import LineIndex


def _symbol(
    lines: LineIndex,
    name: str,
    kind: types.SymbolKind,
    span: Span,
    selection: Span,
    detail: str | None = None,
    children: list[types.DocumentSymbol] | None = None,
) -> types.DocumentSymbol:
    # The selection must lie inside the range (a bare journey's name is the file's).
    if not (span.start <= selection.start and selection.end <= span.end):
        selection = span.head(0)
    return types.DocumentSymbol(
        name=name,
        kind=kind,
        range=lines.range(span),
        selection_range=lines.range(selection),
        detail=detail,
        children=children,
    )


def _steps(journey: ast.Journey, lines: LineIndex) -> list[types.DocumentSymbol]:
    """A journey's steps, nested as its blocks are, named as the compiler names them."""
    ir = lower_journey(journey, journey.span.file, {}, {})
    names = {(p.line, p.column): node_id for node_id, p in ir.source_map.items()}

    def block(steps: tuple[ast.Step, ...]) -> list[types.DocumentSymbol]:
        out = []
        for step in steps:
            node_id = names.get((step.span.line, step.span.column), "?")
            node = ir.nodes.get(node_id)
            selection = step.label.span if step.label is not None else step.span.head(0)
            children = [s for b in ast.child_blocks(step) for s in block(b)]
            out.append(
                _symbol(
                    lines,
                    node_id,
                    types.SymbolKind.Event,
                    step.span,
                    selection,
                    node.kind if node is not None else None,
                    children or None,
                )
            )
        return out

    return block(journey.steps)


def document_symbols(tree: ast.SourceFile, lines: LineIndex) -> list[types.DocumentSymbol]:
    """The outline of one parsed file."""
    out: list[types.DocumentSymbol] = []
    for decl in tree.declarations:
        if isinstance(decl, ast.Journey):
            out.append(
                _symbol(
                    lines,
                    decl.name,
                    types.SymbolKind.Module,
                    decl.span,
                    decl.name_span,
                    decl.title or "journey",
                    _steps(decl, lines),
                )
            )
        elif isinstance(decl, ast.Message):
            field = types.SymbolKind.Field
            parts = [
                _symbol(lines, p.channel, field, p.span, p.span.head(len(p.channel)))
                for p in decl.parts
            ]
            out.append(
                _symbol(
                    lines,
                    decl.name,
                    types.SymbolKind.Struct,
                    decl.span,
                    decl.name_span,
                    "message",
                    parts,
                )
            )
        else:
            out.append(
                _symbol(
                    lines, decl.name, types.SymbolKind.Boolean, decl.span, decl.name_span, "segment"
                )
            )
    return out
