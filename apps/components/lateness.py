"""The state readers show: the stored one, or *late* for an overdue heartbeat.

A missed ping is recorded by ``components.heartbeats_evaluate``, which beat
schedules; with beat (or every worker) down it never runs, and the stored state of
every heartbeat, the console's own ``console-beat`` included, stays healthy while
the outage lasts. So, like Healthchecks.io, readers (``/health``, the dashboard,
the admin list, the REST API) work lateness out at read time, here and only here.
"""

from dataclasses import dataclass
from datetime import datetime

from apps.components.models import Component, Kind, State
from apps.components.state import DOWN


@dataclass(frozen=True, slots=True)
class ShownState:
    """A component's state as readers show it; ``late`` when derived, not stored."""

    state: str
    since: datetime | None
    message: str
    late: bool = False


def state_shown(
    *,
    state: str,
    alert_after: datetime | None,
    now: datetime,
    since: datetime | None = None,
    message: str = "",
    last_ping_at: datetime | None = None,
    watched: bool = True,
) -> ShownState:
    """The stored state, or unhealthy "late: …" once a watched heartbeat that is not
    down yet has passed ``alert_after`` (its ping's due time or a started run, plus
    grace) with no evaluation recorded since."""
    if not watched or alert_after is None or alert_after > now or state in DOWN:
        return ShownState(state, since, message)
    ping = f"no ping since {_at(last_ping_at)}" if last_ping_at else "no ping yet"
    late = f"late: {ping} (due by {_at(alert_after)} with grace)"
    return ShownState(State.UNHEALTHY, alert_after, late, late=True)


def component_state_shown(*, component: Component, now: datetime) -> ShownState | None:
    """``state_shown`` for a component (with ``state`` and ``heartbeat`` selected);
    None before it has a state."""
    stored = getattr(component, "state", None)
    if stored is None:
        return None
    beat = (
        getattr(component, "heartbeat", None)
        if component.kind == Kind.HEARTBEAT
        else None
    )
    return state_shown(
        state=stored.state,
        alert_after=beat.alert_after if beat else None,
        now=now,
        since=stored.since,
        message=stored.last_message,
        last_ping_at=beat.last_ping_at if beat else None,
        watched=component.enabled and not component.paused,
    )


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
