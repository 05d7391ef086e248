"""One command for every benchmark: ``python -m bench`` (or ``bench/run``).

Every ``bench/bench_*.py`` is found by its name (a new one needs no change here) and
run in its own subprocess (``--quick`` passed on; ``--json FILE`` to collect its
figures), one after the other so they do not share the cores. The figures are printed
as one table (figure, value, unit, baseline, ratio, goal, met) on stdout and, with
``--json FILE``, written as ``{"machine": {...}, "figures": [...]}``. A benchmark that
fails (exit status, timeout, no figures) is reported in the table with its stderr
tail; the others still run, and the runner exits 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
PATTERN = "bench_*.py"
TAIL_LINES = 15
DEFAULT_TIMEOUT_S = 3600.0  # a hang guard, not a performance limit
QUICK_TIMEOUT_S = 600.0
FIELDS = ("name", "value", "unit", "baseline", "baseline_name", "ratio", "goal", "met")


@dataclass
class Benchmark:
    """One benchmark script."""

    path: Path

    @property
    def name(self) -> str:
        """The script's name without ``bench_`` and ``.py``: ``predicates``."""
        return self.path.stem.removeprefix("bench_")

    def description(self) -> str:
        """The first line of the script's docstring (read without importing it)."""
        try:
            doc = ast.get_docstring(ast.parse(self.path.read_text(encoding="utf-8")))
        except (OSError, SyntaxError, ValueError):
            return ""
        return doc.strip().splitlines()[0] if doc else ""


@dataclass
class Result:
    """What one benchmark run produced."""

    bench: Benchmark
    seconds: float
    returncode: int | None
    figures: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def failed(self) -> bool:
        """Whether the benchmark did not produce its figures."""
        return self.error is not None

    def stderr_tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of its stderr (stdout when stderr is empty)."""
        text = self.stderr.strip() or self.stdout.strip()
        return text.splitlines()[-lines:]


def discover(bench_dir: Path | None = None) -> list[Benchmark]:
    """Every ``bench_*.py`` under ``bench_dir`` (default: this directory), by name."""
    where = BENCH_DIR if bench_dir is None else bench_dir
    return [Benchmark(p) for p in sorted(where.glob(PATTERN)) if p.is_file()]


def select(benchmarks: Sequence[Benchmark], only: Sequence[str]) -> list[Benchmark]:
    """The benchmarks whose file name contains one of ``only`` (all when empty)."""
    if not only:
        return list(benchmarks)
    return [b for b in benchmarks if any(o in b.path.name for o in only)]


def run_benchmark(
    bench: Benchmark, *, quick: bool, timeout: float, workdir: Path, extra: Sequence[str] = ()
) -> Result:
    """Run one benchmark script in a subprocess and read its figures."""
    out = workdir / f"{bench.name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(bench.path), *(["--quick"] if quick else []), "--json", str(out)]
    cmd += list(extra)
    env = {**os.environ}
    env.setdefault("PYTHONHASHSEED", "0")  # seeded data; set order must not vary either
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return Result(
            bench,
            time.perf_counter() - t0,
            None,
            error=f"timed out after {timeout:.0f} s",
            stdout=_text(exc.stdout),
            stderr=_text(exc.stderr),
        )
    result = Result(
        bench, time.perf_counter() - t0, proc.returncode, [], None, proc.stdout, proc.stderr
    )
    if proc.returncode != 0:
        result.error = f"exit status {proc.returncode}"
        return result
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
        figures = doc["figures"]
        assert isinstance(figures, list) and figures, "no figures"
        result.figures = [
            {k: f.get(k) for k in FIELDS} | {"benchmark": bench.name} for f in figures
        ]
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        result.error = f"no figures in --json output ({exc.__class__.__name__}: {exc})"
    return result


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


# ---------------------------------------------------------------- the table


def fmt_number(value: float | None) -> str:
    """Figures as people read them: ``12,345``, ``0.3489``, ``4.11M``; ``-`` for none."""
    if value is None:
        return "-"
    if abs(value) >= 10_000_000:
        return f"{value / 1e6:,.1f}M"
    if abs(value) >= 1_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def rows_of(results: Sequence[Result]) -> list[list[str]]:
    """Table rows: benchmark, figure, value, unit, baseline, ratio, goal, met."""
    rows: list[list[str]] = []
    for r in results:
        if r.failed:
            rows.append(
                [r.bench.name, "(benchmark failed)", "-", "", "-", "-", r.error or "", "FAILED"]
            )
            continue
        for f in r.figures:
            base = "-"
            if f["baseline"] is not None:
                base = fmt_number(f["baseline"])
                if f.get("baseline_name"):
                    base += f" ({f['baseline_name']})"
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
            met = "" if f["met"] is None else ("met" if f["met"] else "MISSED")
            rows.append(
                [
                    r.bench.name,
                    f["name"],
                    fmt_number(f["value"]),
                    f["unit"],
                    base,
                    ratio,
                    f["goal"] or "",
                    met,
                ]
            )
    return rows


HEADER = ["benchmark", "figure", "value", "unit", "baseline", "ratio", "goal", "met"]
RIGHT = {2, 4, 5}  # value, baseline, ratio


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width table; numbers right-aligned."""
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = []
    for row in [HEADER, *rows]:
        cells = [
            c.rjust(widths[i]) if i in RIGHT else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """The same table in Markdown."""
    align = ["---:" if i in RIGHT else "---" for i in range(len(HEADER))]
    out = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def report(results: Sequence[Result], markdown: bool) -> str:
    """The table, then each failure's stderr tail, then a summary line."""
    rows = rows_of(results)
    parts = [markdown_table(rows) if markdown else text_table(rows)]
    for r in results:
        if r.failed:
            tail = "\n".join(f"    {line}" for line in r.stderr_tail())
            parts.append(f"\n{r.bench.path.name} FAILED ({r.error}); stderr tail:\n{tail}")
    figures = [f for r in results for f in r.figures]
    goals = [f for f in figures if f["met"] is not None]
    met = sum(1 for f in goals if f["met"])
    failed = sum(1 for r in results if r.failed)
    parts.append(
        f"\n{len(results)} benchmark(s), {len(figures)} figures; goals: {met} met, "
        f"{len(goals) - met} missed; {failed} benchmark(s) failed; "
        f"{sum(r.seconds for r in results):.0f} s"
    )
    return "\n".join(parts)


def json_document(results: Sequence[Result], quick: bool, load: Sequence[float]) -> dict[str, Any]:
    """What ``--json FILE`` holds."""
    return {
        "machine": {
            **machine(),
            "load_average_start": [round(x, 2) for x in load],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "quick": quick,
        "figures": [f for r in results for f in r.figures],
        "benchmarks": [
            {
                "benchmark": r.bench.name,
                "file": r.bench.path.name,
                "seconds": round(r.seconds, 2),
                "ok": not r.failed,
                "error": r.error,
                "stderr_tail": r.stderr_tail() if r.failed else [],
            }
            for r in results
        ],
    }


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run every bench/bench_*.py and print its figures beside their baselines.",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke; < 2 min)")
    ap.add_argument("--json", metavar="FILE", type=Path, help="write machine and figures as JSON")
    ap.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="run benchmarks whose file name contains NAME (repeatable)",
    )
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        default=None,
        help=f"seconds per benchmark before it counts as failed "
        f"(default {QUICK_TIMEOUT_S:.0f} with --quick, else {DEFAULT_TIMEOUT_S:.0f})",
    )
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="print each benchmark's own output too"
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; 0 when all produced figures, 1 otherwise."""
    args = parse_args(argv)
    err = Console(stderr=True)
    benchmarks = select(discover(), args.only)
    if not benchmarks:
        err.print(f"no benchmark matches {' '.join(args.only)} (see --list)")
        return 2
    if args.list:
        width = max(len(b.name) for b in benchmarks)
        files = max(len(b.path.name) for b in benchmarks)
        for b in benchmarks:
            print(f"{b.name:{width}}  {b.path.name:{files}}  {b.description()}")
        return 0

    timeout = args.timeout or (QUICK_TIMEOUT_S if args.quick else DEFAULT_TIMEOUT_S)
    load = os.getloadavg()
    m = machine()
    print(
        f"machine: {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}, "
        f"{m['platform']}; load average {', '.join(f'{x:.2f}' for x in load)}"
    )
    print(f"benchmarks: {', '.join(b.name for b in benchmarks)}{' (quick)' if args.quick else ''}")
    sys.stdout.flush()

    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="journeyc-bench-") as tmp,
        Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("benchmarks", total=len(benchmarks))
        for b in benchmarks:
            progress.update(task, description=f"bench_{b.name}")
            r = run_benchmark(b, quick=args.quick, timeout=timeout, workdir=Path(tmp))
            results.append(r)
            status = f"[red]FAILED ({r.error})[/red]" if r.failed else f"{len(r.figures)} figures"
            progress.console.print(f"bench_{b.name}: {status} in {r.seconds:.1f} s")
            if args.verbose:
                progress.console.print(r.stdout.rstrip(), markup=False, highlight=False)
            progress.advance(task)

    print()
    print(report(results, args.markdown))
    if args.json is not None:
        doc = json_document(results, args.quick, load)
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 1 if any(r.failed for r in results) else 0
