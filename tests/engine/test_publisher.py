"""The worker's publisher against the test Redis: one round trip a flush, the cancel flag
read by that round trip, and a stream that Redis lost started over."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import redis

from app.engine import live
from app.engine.runner import Job, Publisher
from app.redis_conn import get_redis

RUN_ID = 987_654


class CountingRedis(redis.Redis):
    """Counts the commands it sends (a script's call is one)."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def counting_client() -> CountingRedis:
    client = CountingRedis(connection_pool=get_redis().connection_pool)
    client.sent = []
    return client


def publisher(client: redis.Redis) -> Publisher:
    job = cast(Job, SimpleNamespace(run_id=RUN_ID, attempt=1, workspace_id=1))
    return Publisher(client, job)


def entries(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    found: Any = client.xrange(live.run_stream(RUN_ID))
    return [(fields["type"], live.decode_entry(fields)[1]) for _, fields in found]


def test_a_flush_and_the_cancel_check_after_it_are_one_round_trip() -> None:
    client = counting_client()
    client.delete(*live.run_keys(RUN_ID))
    live.announce_queued(client, run_id=RUN_ID, task_id=1, workspace_id=1)
    sending = publisher(client)
    sending.token("zero ")  # the first flush loads the script into Redis (two more calls)
    client.sent.clear()

    looked = []
    for text in ("one ", "two ", "three "):
        sending.pending.append(text)
        sending.flush()
        looked.append(sending.cancel_requested())
    sent = len(client.sent)
    client.set(live.cancel_flag(RUN_ID), "1")
    sending.pending.append("four")
    sending.flush()
    looked.append(sending.cancel_requested())

    assert looked == [False, False, False, True]
    assert sent == 3, client.sent  # a flush each; each check read what its flush found
    tokens = [data["text"] for type_, data in entries(client) if type_ == "token"]
    assert "".join(tokens) == "zero one two three four"
    client.delete(*live.run_keys(RUN_ID))


def test_a_stream_redis_lost_starts_over_with_the_whole_text() -> None:
    client = get_redis()
    client.delete(*live.run_keys(RUN_ID))
    live.announce_queued(client, run_id=RUN_ID, task_id=1, workspace_id=1)
    sending = publisher(client)
    sending.token("Hello")
    client.delete(live.run_stream(RUN_ID))  # Redis came back empty

    sending.pending.append(" world")
    sending.flush()
    sending.event("done", {"status": "succeeded"})

    assert [type_ for type_, _ in entries(client)] == ["reset", "token", "token", "done"]
    assert [data.get("text") for _, data in entries(client)][1:3] == ["Hello", " world"]
    assert client.ttl(live.run_stream(RUN_ID)) > 0  # the end starts its expiry
    client.delete(*live.run_keys(RUN_ID))
