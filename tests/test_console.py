"""The console of ``switchboard up``: every part's lines in one format, prefixed with the part;
Redis and llama-server, which do not log through Python, translated into it."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from app.runtime import console, embedded_redis
from app.runtime.supervisor import start_relayed

LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<part>\w+)\s* \| (?P<level>[A-Z]+) (?P<name>[\w.-]+): ")


def redis(level: str, message: str) -> str:
    """A line as redis-server writes its log."""
    return f"4242:M 30 Nov 2026 12:00:01.123 {level} {message}"


def test_redis_lines_read_like_the_rest_and_host_noise_is_dropped():
    found = console.redis_line(redis("#", "Can't handle RDB format version 12"))
    assert found == "WARNING redis: Can't handle RDB format version 12"
    found = console.redis_line(redis("*", "Ready to accept connections unix"))
    assert found == "INFO redis: Ready to accept connections unix"
    assert console.redis_line(redis("#", "WARNING Memory overcommit must be enabled! …")) is None
    assert console.redis_line(redis("#", "Warning: no config file specified, using…")) is None
    assert console.redis_line(redis("#", "User requested shutdown...")) is None
    signal = "10339:signal-handler (1796041986) Received SIGTERM scheduling shutdown..."
    assert console.redis_line(signal) is None
    signal = "10339:signal-handler (1796041986) Received SIGSEGV"
    assert console.redis_line(signal) == "WARNING redis: Received SIGSEGV"
    # Not a log line (an error before logging starts): kept as it is.
    assert console.redis_line("Bad directive") == "Bad directive"


def test_llama_server_lines_keep_warnings_and_errors_on_a_quiet_console():
    quiet = console.llama_filter("warning")
    assert quiet("I srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 200") is None
    assert quiet("0.01.234.567 W llama_model_load: vocab only") == (
        "WARNING llama-server: llama_model_load: vocab only"
    )
    assert quiet("E main: failed to load model") == "ERROR llama-server: main: failed to load model"
    assert quiet("something without a prefix") is None  # INFO, like llama-server's banner
    assert quiet("W load: control-looking token: 212 '</s>' was not control-type") is None
    chatty = console.llama_filter("info")
    assert chatty("I main: server is listening") == "INFO llama-server: main: server is listening"


def test_a_childs_lines_are_relayed_with_its_part_in_the_one_format(capsys):
    script = (
        "print('4242:M 30 Nov 2026 12:00:01.123 # Something a person should know');"
        "print('4242:C 30 Nov 2026 12:00:01.123 # WARNING Memory overcommit must be enabled!')"
    )
    process = start_relayed("redis", [sys.executable, "-c", script], {},
                            translate=console.redis_line)  # fmt: skip
    process.wait(30)
    _relayed_to_the_end(process)
    relayed = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(relayed) == 1, relayed
    found = LINE.match(relayed[0])
    assert found and found["part"] == "redis" and found["level"] == "WARNING", relayed
    assert relayed[0].endswith("WARNING redis: Something a person should know")


def test_the_embedded_redis_speaks_on_the_console_as_redis(capsys):
    data_dir = Path(tempfile.mkdtemp(prefix="sbq-", dir="/tmp"))
    process = embedded_redis.start(data_dir, console_part="redis")
    try:
        assert embedded_redis.is_serving(data_dir / "redis.sock")
    finally:
        embedded_redis.stop(process)
    _relayed_to_the_end(process)
    # Quiet: a clean start and stop say nothing a newcomer would need to act on, and no log
    # file is written beside the console.
    assert capsys.readouterr().out.strip() == ""
    assert not (data_dir / "redis.log").exists()


def _relayed_to_the_end(process, timeout: float = 10) -> None:
    """Until the relay has read the child's output to its end (it then closes the pipe)."""
    deadline = time.monotonic() + timeout
    while not process.stdout.closed:
        assert time.monotonic() < deadline, "the relay did not finish"
        time.sleep(0.01)
