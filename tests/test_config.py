"""Settings: defaults, refusals with clear messages, the generated key, and the docs."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from app.config import Settings, SettingsError, load_settings
from app.paths import PROJECT_ROOT

STRONG_KEY = "k" * 20 + "Q7vXz29mLpT4rYs8NwE1"


def settings_without_env(monkeypatch: pytest.MonkeyPatch, **values: object) -> Settings:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"SWITCHBOARD_{name.upper()}", raising=False)
    monkeypatch.chdir(PROJECT_ROOT / "tests")  # no stray .env file
    return load_settings(**values)


def test_defaults_are_the_embedded_one_machine_setup(monkeypatch, tmp_path):
    settings = settings_without_env(monkeypatch, data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'switchboard.db'}"
    assert settings.uses_embedded_redis
    assert settings.effective_redis_url == f"unix://{tmp_path / 'redis.sock'}"
    assert (settings.host, settings.port, settings.environment) == (
        "127.0.0.1",
        8000,
        "development",
    )


def test_visibility_timeout_must_exceed_run_time_limit(monkeypatch):
    with pytest.raises(
        SettingsError, match="SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT.*must be longer"
    ):
        settings_without_env(monkeypatch, run_time_limit=600, broker_visibility_timeout=600)


@pytest.mark.parametrize("weak", ["changeme", "secret", "short-but-random-x7"])
def test_production_refuses_a_weak_secret_key(monkeypatch, weak):
    with pytest.raises(SettingsError, match="SWITCHBOARD_SECRET_KEY is weak"):
        settings_without_env(monkeypatch, environment="production", secret_key=weak)


def test_production_accepts_a_strong_key_and_development_any(monkeypatch):
    strong = settings_without_env(monkeypatch, environment="production", secret_key=STRONG_KEY)
    assert strong.secret_key_value() == STRONG_KEY
    assert strong.secure_cookies
    assert settings_without_env(monkeypatch, secret_key="dev").secret_key_value() == "dev"


def test_a_wrong_value_names_the_variable(monkeypatch):
    with pytest.raises(SettingsError, match="SWITCHBOARD_PORT"):
        settings_without_env(monkeypatch, port=99999)


def test_generated_key_is_private_random_and_stable(monkeypatch, tmp_path):
    settings = settings_without_env(monkeypatch, data_dir=tmp_path)
    first = settings.secret_key_value()
    key_file = tmp_path / "secret_key"
    assert len(first) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings_without_env(monkeypatch, data_dir=tmp_path).secret_key_value() == first
    other = settings_without_env(monkeypatch, data_dir=tmp_path / "other").secret_key_value()
    assert other != first


def documented_names(path: Path) -> set[str]:
    return set(re.findall(r"SWITCHBOARD_[A-Z_]+", path.read_text()))


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document):
    expected = {f"SWITCHBOARD_{name.upper()}" for name in Settings.model_fields}
    missing = expected - documented_names(PROJECT_ROOT / document)
    assert not missing, f"{document} does not mention {sorted(missing)}"


def test_env_example_names_only_real_settings():
    known = {f"SWITCHBOARD_{name.upper()}" for name in Settings.model_fields}
    assignments = re.findall(
        r"^#?\s*(SWITCHBOARD_[A-Z_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M
    )
    assert set(assignments) - known == set()


def test_empty_variables_count_as_unset(monkeypatch, tmp_path):
    """A copied .env.example leaves values empty; that must mean 'use the default'."""
    settings_without_env(monkeypatch)  # clears the test suite's own variables
    monkeypatch.setenv("SWITCHBOARD_ENVIRONMENT", "production")
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", "")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.secret_key is None and len(settings.secret_key_value()) >= 48
    assert settings.effective_database_url.startswith("sqlite:///")


def test_setup_token_is_one_per_install(monkeypatch, tmp_path):
    from app.services.setup_token import ensure_setup_token, setup_token_matches

    settings = settings_without_env(monkeypatch, data_dir=tmp_path)
    token = ensure_setup_token(settings)
    assert ensure_setup_token(settings) == token
    assert setup_token_matches(settings, token) and not setup_token_matches(settings, "x")
    assert [p.name for p in tmp_path.iterdir()] == ["setup_token"]


def test_web_workers_default_to_the_cores_available(monkeypatch, tmp_path):
    from app.config import MAX_AUTO_WEB_WORKERS, available_cpus
    from app.runtime.cli import web_argv, web_env

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = settings_without_env(monkeypatch, data_dir=tmp_path, embedded_model=False)
    assert settings.web_workers is None
    expected = min(available_cpus(), MAX_AUTO_WEB_WORKERS)
    assert settings.effective_web_workers == expected >= 1
    # Beside the embedded model, half the cores (at least one): the model decodes on them.
    beside = settings_without_env(monkeypatch, data_dir=tmp_path, embedded_model=True)
    assert beside.effective_web_workers == max(1, min(available_cpus() // 2, MAX_AUTO_WEB_WORKERS))
    argv = web_argv(settings)
    assert argv[argv.index("--workers") + 1] == str(expected)
    # Set, the setting wins; several workers sum their request metrics through a folder.
    three = settings_without_env(monkeypatch, data_dir=tmp_path, web_workers=3)
    assert three.effective_web_workers == 3
    folder = Path(web_env(three)["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.is_dir() and folder.parent == tmp_path and not any(folder.iterdir())
    one = settings_without_env(monkeypatch, data_dir=tmp_path, web_workers=1)
    assert web_env(one) == {}
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "mine"))
    assert web_env(three) == {}  # a folder of the operator's own is kept
