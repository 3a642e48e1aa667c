"""``log_file``: the node also logs to a size-rotated file (for hosts without journald)."""

from __future__ import annotations

import logging

import pytest

from nodeclient._utils.logfile import add_rotating_log
from nodeclient.config import load_settings
from nodeclient.errors import ConfigError


def test_log_file_setting_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KUOTA_HOME", str(tmp_path))
    monkeypatch.setenv("KUOTA_LOG_FILE", str(tmp_path / "logs" / "node.log"))
    settings = load_settings()
    assert settings.log_file == tmp_path / "logs" / "node.log"
    assert (settings.log_max_bytes, settings.log_backups) == (10 * 1024 * 1024, 5)


def test_rotating_log_rotates_and_keeps_the_configured_backups(tmp_path):
    path = tmp_path / "logs" / "node.log"
    root = logging.getLogger()
    level = root.level
    handler = add_rotating_log(path, max_bytes=64 * 1024, backups=2)
    try:
        log = logging.getLogger("kuota.relay.node")
        for i in range(3000):
            log.info("session %05d ended: carried %d bytes", i, i * 1000)
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["node.log", "node.log.1", "node.log.2"]
    assert all((path.parent / f).stat().st_size <= 64 * 1024 for f in files)
    assert "session 02999 ended" in path.read_text()


def test_unwritable_log_file_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot be opened for writing"):
        add_rotating_log(tmp_path / "file" / "node.log", max_bytes=64 * 1024, backups=1)
