"""The live dashboard in a real browser, against real daphne, worker and beat (#8).

Screenshots go to var/artifacts/ so CI keeps them.
"""

import re
import secrets
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from apps.breakers.services import breaker_act, breaker_register
from apps.core.models import AuditEvent
from apps.core.roles import OPERATOR, VIEWER
from apps.flags.services import flag_create
from apps.healing.models import HealingPolicy
from apps.live import publish
from apps.live.selectors import TaskMinute, TaskOutcomes, TaskOutcomesReport
from apps.live.services import (
    TASKS_DELTA_KEY,
    task_outcomes_payload,
    task_outcomes_refresh,
)
from opsconsole.beat import beat_lock_key
from opsconsole.celery import app
from opsconsole.embedded import free_port
from tests.browser.test_admin import _log_in, _staff_user
from tests.components.helpers import http_target, make_component
from tests.flags.builders import flag_data
from tests.live.task_runs import NAMES, run_known_tasks
from tests.live.worker_tasks import FAILS, RETRIES_ONCE, SUCCEEDS
from tests.procs import celery_beat, celery_worker, daphne

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"
INTERVAL = 1


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _switch_off_in_admin(page: Page, key: str) -> None:
    page.goto("/admin/flags/flag/")
    row = page.locator("#result_list tbody tr", has_text=key)
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("switch_off")
    page.locator("button[name=index]").click()
    page.get_by_label("Reason:").fill("dashboard test")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Switched off 1 of 1.")


def test_dashboard__target_down_flag_switched_server_restarted__page_follows_live(
    browser: Browser, tmp_path: Path
):
    # Given a checked HTTP component, a flag, and an operator on the dashboard
    redis.Redis.from_url(settings.REDIS_URL).delete(beat_lock_key())
    username, password = _staff_user(OPERATOR)
    flag_create(
        key="dashboard-banner",
        data=flag_data(name="Dashboard banner"),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    port = free_port()
    with ExitStack() as stack:
        target = stack.enter_context(http_target())
        component = make_component(
            config={"url": target.url("/svc")},
            interval_seconds=INTERVAL,
            timeout_seconds=2.0,
            failure_threshold=1,
            success_threshold=1,
        )
        stack.enter_context(celery_worker(tmp_path, name="dashboard"))
        stack.callback(celery_beat(tmp_path).stop)
        web = ExitStack()
        stack.enter_context(web)
        url = web.enter_context(daphne(tmp_path, port=port))
        context = browser.new_context(base_url=url)
        stack.callback(context.close)
        page = context.new_page()
        _log_in(page, username, password)
        page.goto("/dashboard/")
        tile = page.locator(f'li[data-slug="{component.slug}"] a.ops-tile')
        expect(tile).to_have_attribute("data-state", "healthy", timeout=20_000)
        expect(page.locator("#ops-connection")).to_have_text("Live")
        _shot(page, "healthy")

        # When its target fails, the tile turns unhealthy without a reload
        target.status = 503
        expect(tile).to_have_attribute(
            "data-state", "unhealthy", timeout=(INTERVAL + 5) * 1000
        )
        feed = page.locator("#ops-events")
        expect(feed).to_contain_text(f"{component.name}: healthy → unhealthy")
        _shot(page, "unhealthy")

        # When a flag is switched in another tab, the feed shows who did it
        _switch_off_in_admin(context.new_page(), "dashboard-banner")
        expect(feed).to_contain_text(f"{username} · flag.toggled")

        # When daphne stops, the page says it is stale; when it is back, it resyncs
        web.close()
        banner = page.locator("#ops-stale")
        expect(banner).to_be_visible(timeout=10_000)
        expect(banner).to_contain_text("Live updates stopped")
        _shot(page, "stale")
        target.status = 200
        web.enter_context(daphne(tmp_path, port=port))
        expect(banner).to_be_hidden(timeout=30_000)
        expect(page.locator("#ops-connection")).to_have_text("Live")
        expect(tile).to_have_attribute("data-state", "healthy", timeout=10_000)
        _shot(page, "resynced")


def test_dashboard__anonymous__redirected_to_login(page: Page, web: str):
    page.goto("/dashboard/")

    expect(page).to_have_url(f"{web}/admin/login/?next=/dashboard/")


def test_dashboard__viewer__sees_components_and_admin_links_to_it(page: Page, web: str):
    username, password = _staff_user(VIEWER)
    make_component(slug="viewer-sees-this")
    _log_in(page, username, password)

    page.get_by_role("link", name="Live dashboard").click()

    expect(page).to_have_url(f"{web}/dashboard/")
    expect(page.locator('li[data-slug="viewer-sees-this"] a.ops-tile')).to_have_count(1)
    expect(page.locator("#ops-connection")).to_have_text("Live")
    # Data but no actions: the page only links to the admin, which checks roles.
    expect(page.locator("#ops-dashboard").locator("button, form, input")).to_have_count(
        0
    )


def test_dashboard__queue_piles_up_and_a_worker_stops__panel_follows(
    page: Page, web: str, tmp_path: Path
):
    # Given a worker that samples, one that will stop, and beat, with a viewer watching
    redis.Redis.from_url(settings.REDIS_URL).delete(beat_lock_key())
    username, password = _staff_user(VIEWER)
    queue = f"piling-{secrets.token_hex(3)}"
    with ExitStack() as stack:
        stack.enter_context(celery_worker(tmp_path, name="sampler"))
        leaving = ExitStack()
        stack.enter_context(leaving)
        leaving.enter_context(celery_worker(tmp_path, name="leaving"))
        stack.callback(celery_beat(tmp_path).stop)
        _log_in(page, username, password)
        page.goto("/dashboard/")
        workers = page.locator("#ops-workers")
        expect(workers).to_contain_text("leaving-", timeout=15_000)

        # When tasks pile up on a queue nobody consumes, its depth shows and rises
        row = page.locator(f'#ops-queues tr[data-queue="{queue}"]')
        for more, depth in ((2, "2"), (3, "5")):
            for _ in range(more):
                app.send_task("nobody.runs.this", queue=queue)
            expect(row.locator(".ops-depth")).to_have_text(depth, timeout=10_000)

        # When a worker stops, it is gone from the panel within 10 s
        leaving.close()
        expect(workers).not_to_contain_text("leaving-", timeout=10_000)
        expect(page.locator("#ops-events")).to_contain_text("stopped answering")
        _shot(page, "queues")


def test_dashboard__breaker_forced_open_and_a_heal_needing_a_human__panels_show_them(
    page: Page, web: str
):
    # Given a closed breaker and a component whose healing gave up
    breaker_register(name="search-api")
    component = make_component(slug="search-db")
    HealingPolicy.objects.create(
        component=component,
        action="webhook",
        config={},
        episode="needs_human",
        episode_attempts=3,
        max_attempts=3,
    )
    username, password = _staff_user(VIEWER)
    _log_in(page, username, password)
    page.goto("/dashboard/")
    state = page.locator(
        '#ops-breakers tr[data-breaker="search-api"] .ops-breaker-state'
    )
    expect(state).to_have_text("CLOSED", timeout=15_000)
    expect(page.locator("#ops-healing")).to_contain_text("search-db: needs a human")

    # When an operator forces the breaker open, the panel and the feed follow live
    breaker_act(
        name="search-api",
        action="force_open",
        actor=None,
        reason="index rebuild",
        source=AuditEvent.Source.CLI,
    )

    expect(state).to_have_text("FORCED_OPEN", timeout=10_000)
    expect(page.locator("#ops-events")).to_contain_text(
        "breaker search-api: CLOSED → FORCED_OPEN"
    )
    _shot(page, "breakers")


def test_dashboard__tasks_succeed_fail_and_retry__task_panel_shows_runs_per_minute(
    page: Page, web: str, tmp_path: Path
):
    # Given a viewer on the dashboard
    username, password = _staff_user(VIEWER)
    _log_in(page, username, password)
    page.goto("/dashboard/")
    expect(page.locator("#ops-connection")).to_have_text("Live")

    # When a worker runs tasks that succeed, fail, and retry, and live.sample's
    # refresh reads their rollups
    report, later = run_known_tasks(tmp_path)
    task_outcomes_refresh(names=NAMES, now=later.timestamp())

    # Then each task's row shows its runs in the newest minute, live
    newest = {t.task: t.minutes[-1] for t in report.tasks}
    rows = page.locator("#ops-tasks tbody")
    for name in (SUCCEEDS, FAILS, RETRIES_ONCE):
        row = rows.locator(f'tr[data-task="{name}"]')
        expect(row.locator(".ops-succeeded")).to_have_text(str(newest[name].succeeded))
        expect(row.locator(".ops-failed")).to_have_text(str(newest[name].failed))
        expect(row.locator(".ops-retried")).to_have_text(str(newest[name].retried))
    failing = rows.locator(f'tr[data-task="{FAILS}"]')
    expect(failing).to_have_attribute(
        "data-failing", "true" if newest[FAILS].failed else "false"
    )
    # (Runs that straddle a minute boundary leave the newest minute without some.)
    p95 = re.compile(r"^\d+ ms$") if newest[SUCCEEDS].p95_s is not None else "\u2013"
    expect(rows.locator(f'tr[data-task="{SUCCEEDS}"] .ops-p95')).to_have_text(p95)
    expect(page.locator("#ops-tasks-minute")).to_have_attribute("data-stale", "false")
    _shot(page, "tasks")

    # And a fresh page gets the same from its snapshot
    page.reload()
    expect(rows.locator(f'tr[data-task="{FAILS}"] .ops-failed')).to_have_text(
        str(newest[FAILS].failed)
    )


def test_dashboard__task_figures_minutes_behind__panel_says_so(page: Page, web: str):
    # Given a viewer on the dashboard
    username, password = _staff_user(VIEWER)
    _log_in(page, username, password)
    page.goto("/dashboard/")
    expect(page.locator("#ops-connection")).to_have_text("Live")

    # When the newest rolled-up minute is ten minutes old (the rollups stopped)
    old = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    report = TaskOutcomesReport(
        through=old,
        tasks=(TaskOutcomes("live.sample", (TaskMinute(old, 30, 0, 0, 0.01),)),),
    )
    payload = task_outcomes_payload(report, computed_at=time.time())
    publish("queues", payload, key=TASKS_DELTA_KEY)

    # Then the panel shows the figures and says they are behind
    minute = page.locator("#ops-tasks-minute")
    expect(minute).to_have_attribute("data-stale", "true")
    # (10 once the minute turns while the page renders)
    expect(minute).to_contain_text(re.compile(r"\b(9|10) min behind"))
    row = page.locator('#ops-tasks tr[data-task="live.sample"]')
    expect(row.locator(".ops-succeeded")).to_have_text("30")
