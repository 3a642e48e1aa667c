"""Errors of the node's HTTP service: a setting it cannot start with, named with its value."""

from __future__ import annotations

from nodeclient.errors import ConfigError

__all__ = ["WebConfigError"]


class WebConfigError(ConfigError):
    """A web service setting is invalid or missing; names the setting, its value and the rule."""

    def __init__(self, setting: str, value: object, rule: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"web setting {setting} = {value!r} is invalid: {rule}")
