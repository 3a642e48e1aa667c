"""Helpers of ``scripts/demo.py``: the CLI runner, a local content server, a latency link, the summary."""
