"""The journeyc command."""

import click


@click.group()
def main() -> None:
    """Journeys as code."""
