"""Simulated people browsing board and task pages, with locust as a library (headless).

    python -m bench.browse_load --host URL --cookies JSON --paths /w/a,/t/1 [--users 50]

Its own process: locust patches the standard library for gevent on import, which must not
touch the benchmark measuring beside it. Each simulated person signs in with the given
cookies and opens one of the paths, thinks for ``--think`` seconds (a range), and so on.
Prints ``spawned`` once every person is browsing, then runs until stdin closes (or SIGTERM),
and prints its request figures as one JSON line on the way out.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
from typing import Any

import gevent
from gevent.fileobject import FileObjectThread
from locust import HttpUser, between, events, task
from locust.env import Environment


def browser_class(paths: list[str], cookies: dict[str, str], think: tuple[float, float]) -> type:
    class Person(HttpUser):
        wait_time = between(*think)

        def on_start(self) -> None:
            for name, value in cookies.items():
                self.client.cookies.set(name, value)

        @task
        def open_a_page(self) -> None:
            path = random.choice(paths)
            with self.client.get(path, name=path, catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"{path}: {response.status_code}")

    return Person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--cookies", required=True, help="a JSON object: name → value")
    parser.add_argument("--paths", required=True, help="comma-separated")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--think", default="0.5,2", help="seconds between pages: low,high")
    args = parser.parse_args()

    low, high = (float(x) for x in args.think.split(","))
    person = browser_class(args.paths.split(","), json.loads(args.cookies), (low, high))
    person.host = args.host
    env = Environment(user_classes=[person], events=events)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.users)

    def announce() -> None:
        while runner.user_count < args.users:
            gevent.sleep(0.05)
        print("spawned", flush=True)

    def until_stdin_closes() -> None:
        FileObjectThread(sys.stdin).read()
        runner.quit()

    gevent.spawn(announce)
    gevent.spawn(until_stdin_closes)
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    runner.greenlet.join()
    total = env.stats.total
    figures: dict[str, Any] = {
        "users": args.users,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "requests_per_s": round(total.total_rps, 1),
        "median_ms": total.median_response_time,
        "p95_ms": total.get_response_time_percentile(0.95),
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
