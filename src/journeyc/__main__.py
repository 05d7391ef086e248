"""``python -m journeyc``."""

from journeyc.cli import main

main()
