"""The Celery app is configured for long runs that must be neither lost nor run twice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.config import SettingsError, get_settings
from app.redis_conn import celery_broker_url
from workers.celery_app import celery_app, check_delivery_settings, create_celery


def test_delivery_settings():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_disable_prefetch is True
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_time_limit == get_settings().run_time_limit


def test_visibility_timeout_not_above_the_hard_limit_is_refused():
    conf = SimpleNamespace(broker_transport_options={"visibility_timeout": 60}, task_time_limit=60)
    with pytest.raises(SettingsError, match="SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT"):
        check_delivery_settings(conf)


def test_broker_url_spells_unix_sockets_for_kombu():
    assert celery_broker_url("unix:///tmp/r.sock") == "redis+socket:///tmp/r.sock"
    assert celery_broker_url("redis://h:6379/1") == "redis://h:6379/1"
    app = create_celery(get_settings())
    assert app.conf.broker_url == celery_broker_url(get_settings().effective_redis_url)


def test_the_run_worker_is_one_process_of_threads_and_checks_keep_processes():
    from app.config import Settings
    from app.runtime.cli import checker_argv, worker_argv

    settings = Settings()  # type: ignore[call-arg]
    worker = worker_argv(settings)
    assert worker[worker.index("--pool") + 1] == "threads"
    assert int(worker[worker.index("--concurrency") + 1]) == settings.worker_concurrency >= 32
    checker = checker_argv(settings)
    assert checker[checker.index("--pool") + 1] == "prefork"
    assert checker[checker.index("--queues") + 1] == "checks"
    prefork = worker_argv(Settings(worker_pool="prefork"))  # type: ignore[call-arg]
    assert prefork[prefork.index("--pool") + 1] == "prefork"


def test_a_threaded_worker_sizes_its_database_pool_for_its_threads(monkeypatch):
    import app.db
    from workers.celery_app import _prepare_threads

    monkeypatch.setattr(app.db, "_pool", app.db.DEFAULT_POOL)
    app.db.get_engine.cache_clear()
    try:
        _prepare_threads(sender=SimpleNamespace(pool_cls="prefork", concurrency=32))
        pool = app.db.get_engine().pool
        default = app.db.DEFAULT_POOL
        assert pool.size() + pool._max_overflow == default.size + default.overflow  # type: ignore[attr-defined]

        _prepare_threads(sender=SimpleNamespace(pool_cls="threads", concurrency=32))

        pool = app.db.get_engine().pool
        # Every thread and its run's heartbeat may hold a connection at once: none waits.
        assert pool.size() + pool._max_overflow >= 2 * 32  # type: ignore[attr-defined]
        if app.db.get_engine().dialect.name != "sqlite":  # SQLite keeps every connection
            assert pool.size() <= 10  # type: ignore[attr-defined]
    finally:
        app.db._pool = app.db.DEFAULT_POOL
        app.db.get_engine().dispose()
        app.db.get_engine.cache_clear()
