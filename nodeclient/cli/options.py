"""Placeholder for shared CLI options."""
