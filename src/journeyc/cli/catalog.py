"""``journeyc catalog``: the product catalog the recommendation filters read."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from journeyc.cli.common import EXIT_INVALID, echo_json, json_option, open_store, usage_error
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.store.targets import StoreTarget, shown

if TYPE_CHECKING:
    from journeyc.catalog import CatalogFile, Format

BAR_BYTES = 1 << 20
"""Files at least this big get a progress bar (on a terminal)."""

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="The file's format (default: csv for a .csv file, else JSON lines).",
)


@click.group()
def catalog() -> None:
    """The product catalog that top_sellers, popular and cross_sell recommend from.

    Exit codes (journeyc catalog load): 0 every row loaded, 1 some rows refused,
    2 usage error or an unreadable file.
    """


@catalog.command()
@click.argument("catalog_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@store_option
@config_option
@format_option
@json_option
def load(
    catalog_file: Path,
    db: StoreTarget | None,
    config_file: Path | None,
    fmt: Format | None,
    as_json: bool,
) -> None:
    """Load (insert or replace) products from FILE into the store.

    FILE holds one product a row: JSON lines (one object a line) or CSV (a header row,
    then one row a product). Fields: id (required), name, brand, category, price, url,
    image, in_stock (default true); other fields are kept and given to templates too.
    A row replaces the whole product of its id, stock included; products that events
    taught are completed or corrected by it.

    Every row is checked: a bad row is reported with its line and field and left out,
    and the good rows are loaded all the same, in one transaction. A progress bar
    shows on a terminal for large files.

    Exit codes: 0 every row loaded, 1 some rows refused (or a store that cannot be
    opened), 2 usage error or a file that cannot be read.
    """
    from journeyc.catalog import read_catalog, upsert_products

    if not catalog_file.is_file():
        usage_error(f"{catalog_file}: no such file")
    config, _ = read_config(config_file)
    path = store_target(db, config)
    size = catalog_file.stat().st_size
    with _progress(size >= BAR_BYTES) as bar:
        try:
            read = read_catalog(catalog_file, fmt, bar("reading", size))
        except OSError as exc:
            usage_error(f"{catalog_file}: {exc.strerror or exc}")
        store = open_store(path)
        try:
            done = upsert_products(
                store, read.products, progress=bar("loading", len(read.products))
            )
        finally:
            store.close()
    summary: dict[str, Any] = {
        "file": str(catalog_file),
        "store": shown(path),
        "rows": read.rows,
        "loaded": len(read.products),
        "new": done.new,
        "updated": done.updated,
        "refused": read.refused,
        "problems": [p.as_dict() for p in read.problems],
    }
    if as_json:
        echo_json(summary)
    else:
        _report(read, summary)
    sys.exit(EXIT_INVALID if read.problems else 0)


def _report(read: CatalogFile, summary: dict[str, Any]) -> None:
    if read.problems:
        click.echo(
            f"journeyc: {summary['refused']} row(s) refused, the others were loaded:", err=True
        )
        for problem in read.problems:
            click.echo(f"  {problem}", err=True)
    click.echo(
        f"{summary['rows']} row(s) read from {summary['file']}: {summary['loaded']} loaded "
        f"({summary['new']} new, {summary['updated']} updated), {summary['refused']} refused; "
        f"store {summary['store']}"
    )


Bar = Callable[[str, int], Callable[[int], None] | None]


@contextmanager
def _progress(wanted: bool) -> Iterator[Bar]:
    """A factory of progress callbacks: a rich bar on stderr when ``wanted`` and stderr
    is a terminal, else callbacks that are None (nothing to report to)."""
    if not wanted or not sys.stderr.isatty():
        yield lambda _task, _total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:

        def bar(task: str, total: int) -> Callable[[int], None]:
            tid = progress.add_task(task, total=total)
            return lambda done: progress.update(tid, completed=done)

        yield bar
