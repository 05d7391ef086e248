"""The language server (``journeyc lsp``): the checker, formatter and compiler of
:mod:`journeyc.lang` and :mod:`journeyc.compile` behind the Language Server Protocol.

Modules: :mod:`~journeyc.lsp.positions` (offsets and LSP positions),
:mod:`~journeyc.lsp.projects` (which files form a document's project, unsaved text
included), :mod:`~journeyc.lsp.index` (names and where they are used),
:mod:`~journeyc.lsp.hover`, :mod:`~journeyc.lsp.completion`,
:mod:`~journeyc.lsp.symbols` (the outline) and :mod:`~journeyc.lsp.server` (the
pygls server).
"""
