"""Placeholder: this module is being written; it registers its commands through COMMANDS."""

import click


@click.group()
def node() -> None:
    """Register, update and inspect your nodes."""


COMMANDS = [node]
