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
