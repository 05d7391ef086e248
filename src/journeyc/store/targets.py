"""Where a store is: a SQLite file path, or a ``postgresql://`` URL.

A *target* names a store the way a user writes it (``--store``, ``[store]`` in
journeyc.toml, ``JOURNEYC_STORE``). A URL is kept as text: a :class:`~pathlib.Path`
would fold its ``//`` into ``/`` and name another thing. Nothing here opens a store
or imports a database driver, so the configuration and the CLI's options can parse
targets cheaply; :mod:`journeyc.store.open` opens them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "URL_SCHEMES",
    "StoreTarget",
    "hidden",
    "is_url",
    "missing_file",
    "shown",
    "shown_url",
    "target_of",
]

URL_SCHEMES = ("postgresql://", "postgres://")
"""The beginnings of a target that names a PostgreSQL database."""

StoreTarget: TypeAlias = Path | str
"""A store's place: a :class:`~pathlib.Path` (a SQLite file; ``:memory:``) or a
``postgresql://`` URL as text (see :func:`target_of`)."""


def is_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (else a SQLite file)."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def target_of(text: Path | str) -> StoreTarget:
    """The target ``text`` names: the URL itself for a ``postgresql://`` URL, else
    the path of a SQLite file."""
    if is_url(text):
        return str(text)
    return Path(text)


def shown_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter),
    for messages and a store's ``path``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        name = user.split(":", 1)[0]
        netloc = f"{name}@{host}" if name else host
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"],
        safe="/",
    )
    # Not urlunsplit: it drops the empty host of ``postgresql:///db?host=/run/pg``.
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def shown(target: StoreTarget) -> str:
    """``target`` as messages show it: a URL without its password, a path as is."""
    return shown_url(str(target)) if is_url(target) else str(target)


def hidden(text: str, url: str) -> str:
    """``text`` (a driver's message) on one line, with the password of ``url`` starred
    out (libpq's messages run over several lines; a command prints one)."""
    parts = urlsplit(url)
    secrets = [parts.password or ""]
    secrets += [v for k, v in parse_qsl(parts.query) if k == "password"]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())


def missing_file(target: StoreTarget) -> bool:
    """Whether ``target`` is a SQLite file's path with no file there (a URL is never
    missing here: its server answers for it)."""
    return isinstance(target, Path) and not target.is_file()
