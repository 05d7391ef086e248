"""``python -m bench``: run every benchmark and print its figures (see bench/runner.py)."""

from bench.runner import main

raise SystemExit(main())
