"""Instructions one simulate replay runs, counted by valgrind's callgrind.

    python bench/instructions.py [--events 5000] [--users N]

Wall time on a shared machine moves by 2x within a day; the count of instructions a
replay runs does not (the same code gives the same count to within 1%). This script
runs itself again under ``valgrind --tool=callgrind --instr-atstart=no``. Inside, it
builds the project and events of ``bench_simulate.py`` (not counted), switches
collection on with ``callgrind_control`` around ``run_simulate()`` (one process, a
scratch store: ``journeyc simulate`` without ``--db`` on one core), and prints the
count. To compare two checkouts, run it once for each with ``PYTHONPATH=<tree>/src``.
Expect about a minute per 5,000 events.

Not a ``bench_*.py``: ``python -m bench`` does not run it (it needs valgrind, and a
count has no baseline within one run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_INSIDE = "JOURNEYC_UNDER_CALLGRIND"


def count(n_events: int, n_users: int) -> None:
    """Under callgrind: the replay, with collection on around it only."""
    from bench.bench_simulate import EventMaker, compile_project, run_simulate, write_project

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        project = compile_project(write_project(tmp / "proj"))
        events = EventMaker(n_events, n_users).make()
        pid = str(os.getpid())
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        _, _, actions = run_simulate(project, events, tmp)
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        print(f"actions: {len(actions):,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=5_000, help="events (default 5,000)")
    ap.add_argument("--users", type=int, default=None, help="users (default events / 10)")
    args = ap.parse_args()
    n_users = args.users if args.users is not None else max(1, args.events // 10)
    if os.environ.get(_INSIDE):
        count(args.events, n_users)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("instructions.py needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as out_dir:
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={Path(out_dir) / 'callgrind.out'}",
                sys.executable,
                __file__,
                "--events",
                str(args.events),
                "--users",
                str(n_users),
            ],
            env={**os.environ, _INSIDE: "1", "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
        )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        sys.exit(f"the counted run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    total = int(found.group(1))
    print(proc.stdout.strip())
    print(
        f"replay of {args.events:,} events of {n_users:,} users: {total:,} instructions, "
        f"{total // args.events:,} an event"
    )


if __name__ == "__main__":
    main()
