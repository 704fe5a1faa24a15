"""In-process evaluation of one boolean flag (3 rules, the last a 30% rollout), per call,
next to django-waffle, the Unleash Python SDK and a hand-written mmh3 function.

    PYTHONPATH=. .venv/bin/python benchmarks/flags_eval.py [--samples N]

- ours: ``apps.flags.is_enabled`` on the process's compiled snapshot;
- waffle: ``flag_is_active`` on a 30% flag, its cache on the same Redis (Django's
  RedisCache), a fresh request per call as in a real view;
- unleash: ``UnleashClient.is_enabled`` bootstrapped from a dict (no server, no
  fetching, no metrics) with the same three strategies;
- hand-written: the same rules as plain Python with mmh3 (the Python limit).

Contexts are 1,000 users who miss the first two rules, so every call reaches the
rollout. One sample is the mean of a batch of calls (batches sized so the timer's
own cost does not count); median and p99 are over the samples.
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import mmh3

from benchmarks.flags_common import (
    COUNTRIES,
    KEY,
    create_flag,
    django_setup,
    servers,
    summary,
)

USERS = [f"user-{i}" for i in range(1000)]
CONTEXTS = [
    {"targetingKey": u, "country": "de", "plan": "free", "email": f"{u}@mail.example"}
    for u in USERS
]


def measure(
    call: Callable[[Any], object], inputs: list[Any], batch: int, samples: int
) -> list[float]:
    """Per-call nanoseconds, one value per batch of ``batch`` calls."""
    out: list[float] = []
    n = len(inputs)
    i = 0
    for _ in range(samples):
        start = time.perf_counter_ns()
        for _ in range(batch):
            call(inputs[i % n])
            i += 1
        out.append((time.perf_counter_ns() - start) / batch)
    return out


def hand_written(ctx: dict[str, Any]) -> bool:
    if ctx.get("country") in COUNTRIES and ctx.get("plan") == "enterprise":
        return True
    email = ctx.get("email")
    if email is not None and email.endswith("@internal.example"):
        return True
    key = ctx.get("targetingKey")
    if key is None:
        return False
    return mmh3.hash(f"{KEY}:{key}", signed=False) % 100 + 1 <= 30


def unleash_client(cache_dir: str) -> Any:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    constraints = [
        {"contextName": "country", "operator": "IN", "values": COUNTRIES},
        {"contextName": "plan", "operator": "IN", "values": ["enterprise"]},
    ]
    email = [
        {
            "contextName": "email",
            "operator": "STR_ENDS_WITH",
            "values": ["@internal.example"],
        }
    ]
    rollout = {"rollout": "30", "stickiness": "userId", "groupId": KEY}
    features = {
        "version": 1,
        "features": [
            {
                "name": KEY,
                "enabled": True,
                "strategies": [
                    {"name": "default", "parameters": {}, "constraints": constraints},
                    {"name": "default", "parameters": {}, "constraints": email},
                    {"name": "flexibleRollout", "parameters": rollout},
                ],
            }
        ],
    }
    cache = FileCache("flags-bench", directory=cache_dir)
    cache.bootstrap_from_dict(features)
    client = UnleashClient(
        url="http://127.0.0.1:9",
        app_name="flags-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    return client


def waffle_requests(count: int) -> list[Any]:
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    from waffle.models import Flag as WaffleFlag

    WaffleFlag.objects.update_or_create(name=KEY, defaults={"percent": 30})
    factory = RequestFactory()
    requests = []
    for _ in range(count):
        request = factory.get("/")
        request.user = AnonymousUser()
        requests.append(request)
    return requests


def run(samples: int) -> list[tuple[str, float, float]]:
    from waffle import flag_is_active

    import apps.flags

    create_flag()
    apps.flags.is_enabled(KEY, CONTEXTS[0])  # load the snapshot
    unleash_contexts = [
        {
            "userId": c["targetingKey"],
            "properties": {k: c[k] for k in ("country", "plan", "email")},
        }
        for c in CONTEXTS
    ]
    with tempfile.TemporaryDirectory() as cache_dir:
        unleash = unleash_client(cache_dir)
        requests = waffle_requests(samples)
        subjects: list[tuple[str, Callable[[Any], object], list[Any], int]] = [
            (
                "opsconsole flags.is_enabled",
                lambda c: apps.flags.is_enabled(KEY, c),
                CONTEXTS,
                100,
            ),
            ("hand-written mmh3", hand_written, CONTEXTS, 100),
            (
                "UnleashClient is_enabled",
                lambda c: unleash.is_enabled(KEY, c),
                unleash_contexts,
                20,
            ),
            (
                "django-waffle flag_is_active",
                lambda r: flag_is_active(r, KEY),
                requests,
                1,
            ),
        ]
        rows = []
        for name, call, inputs, batch in subjects:
            measure(call, inputs, batch, max(10, samples // 10))  # warm up
            median, p99 = summary(measure(call, inputs, batch, samples))
            rows.append((name, median, p99))
        unleash.destroy()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    with servers():
        django_setup(extra_apps=("waffle",))
        rows = run(args.samples)
    ours = rows[0][1]
    print(f"{'subject':32} {'median µs':>10} {'p99 µs':>10} {'x ours':>8}")
    for name, median, p99 in rows:
        print(f"{name:32} {median:10.2f} {p99:10.2f} {median / ours:8.1f}")


if __name__ == "__main__":
    main()
