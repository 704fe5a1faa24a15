"""The batch runner: one event loop and HTTP session per process, cached configs."""

import json
import os

import pytest

from apps.components.checkers import runner
from apps.components.checkers.runner import CheckJob, run_jobs, runner_close


@pytest.fixture
def fresh_runner():
    """This thread's runner closed before and after the test."""
    runner_close()
    yield
    runner_close()


def _job(component_id: int, config: dict | str) -> CheckJob:
    return CheckJob(component_id, "http", config, 3.0, 0, slug=f"runner-{component_id}")


def test_run_jobs__two_batches__one_connection_kept_between_them(target, fresh_runner):
    first = run_jobs([_job(1, {"url": target.url("/a")})])
    second = run_jobs([_job(2, {"url": target.url("/b")})])
    assert [first[0].status, second[0].status] == ["healthy", "healthy"]
    assert len({request.port for request in target.received}) == 1


def test_run_jobs__runner_closed__next_batch_opens_a_new_connection(
    target, fresh_runner
):
    run_jobs([_job(1, {"url": target.url("/a")})])
    runner_close()
    [outcome] = run_jobs([_job(2, {"url": target.url("/b")})])
    assert outcome.status == "healthy"
    assert len({request.port for request in target.received}) == 2


def test_run_jobs__forked_child__makes_its_own_loop_and_connection(
    target, fresh_runner
):
    run_jobs([_job(1, {"url": target.url("/parent")})])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            [outcome] = run_jobs([_job(2, {"url": target.url("/child")})])
            os.write(write, outcome.status.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_status = pipe.read()
    os.waitpid(pid, 0)
    [parent_after] = run_jobs([_job(3, {"url": target.url("/parent")})])
    assert (child_status, parent_after.status) == ("healthy", "healthy")
    ports = {request.path: set() for request in target.received}
    for request in target.received:
        ports[request.path].add(request.port)
    assert len(ports["/parent"]) == 1, "the parent keeps its connection"
    assert not ports["/child"] & ports["/parent"]


def test_run_jobs__config_as_stored_text__validated_once_per_text(target, fresh_runner):
    text = json.dumps({"url": target.url("/t")})
    runner._config_from_text.cache_clear()
    outcomes = run_jobs([_job(1, text), _job(2, text)])
    assert [outcome.status for outcome in outcomes] == ["healthy", "healthy"]
    info = runner._config_from_text.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_run_jobs__invalid_stored_text__unhealthy_without_a_request(
    target, fresh_runner
):
    text = json.dumps({"url": target.url("/t"), "nope": 1})
    [outcome] = run_jobs([_job(1, text)])
    assert outcome.status == "unhealthy"
    assert outcome.message == "invalid config: 1 error(s)"
    assert target.received == []
