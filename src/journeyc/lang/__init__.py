"""The language front end: parse, AST, diagnostics, checker, formatter."""
