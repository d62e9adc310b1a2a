"""The embedded Redis starts on a socket in the data folder, persists, and stops cleanly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from app.redis_conn import connect
from app.runtime import embedded_redis


def test_start_use_restart_keeps_data_and_stop():
    data_dir = Path(tempfile.mkdtemp(prefix="sbr-", dir="/tmp"))
    process = embedded_redis.start(data_dir)
    try:
        client = connect(f"unix://{data_dir / 'redis.sock'}")
        client.set("kept", "yes")
        with pytest.raises(embedded_redis.EmbeddedRedisError, match="already running"):
            embedded_redis.start(data_dir)
    finally:
        embedded_redis.stop(process)
    assert process.returncode is not None
    assert not embedded_redis.is_serving(data_dir / "redis.sock")
    process = embedded_redis.start(data_dir)
    try:
        assert connect(f"unix://{data_dir / 'redis.sock'}").get("kept") == "yes"
    finally:
        embedded_redis.stop(process)


def test_a_data_folder_too_long_for_a_socket_is_refused_clearly(tmp_path):
    deep = tmp_path / ("d" * 120)
    with pytest.raises(embedded_redis.EmbeddedRedisError, match="SWITCHBOARD_DATA_DIR"):
        embedded_redis.start(deep)
