"""Placeholder: this module is being written; it registers its commands through COMMANDS."""

COMMANDS: list = []
