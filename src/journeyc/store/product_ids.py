"""Product ids as feeds and events give them, made comparable (no SQL here: the
catalog's feed loader and every store's product rows use it)."""

from __future__ import annotations

__all__ = ["product_id_text"]


def product_id_text(value: object) -> object:
    """A product id as feeds and events give it, as text: surrounding blanks dropped;
    numeric ids name the same product as their digits. Anything else is returned as
    it is (for the caller to reject)."""
    # Feeds and pipelines send numeric ids too; they name the same product as their digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return value
