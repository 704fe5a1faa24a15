"""Transition listeners: where notifications and healing (#6) plug in.

``@transition_listener`` registers a function that is called after commit with each
transition that should alert: not in maintenance, not into *impacted* (the
dependency alerts instead), and not a recovery from *impacted*.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from apps.components.models import State
from apps.components.state import UP

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Transition:
    component_id: int
    slug: str
    from_state: str
    to_state: str
    at: datetime
    in_maintenance: bool
    message: str
    # The StateChange row that records it, once written.
    state_change_id: int | None = None

    @property
    def alerts(self) -> bool:
        recovered_from_impact = (
            self.from_state == State.IMPACTED and self.to_state in UP
        )
        return not (
            self.in_maintenance
            or self.to_state == State.IMPACTED
            or recovered_from_impact
        )


Listener = Callable[[Transition], None]
_listeners: list[Listener] = []


def transition_listener(listener: Listener) -> Listener:
    """Call ``listener`` with every alerting transition, after its commit."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def transition_listener_remove(listener: Listener) -> None:
    """Stop calling ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)


def transitions_emit(transitions: Sequence[Transition]) -> None:
    """Log each transition and hand the alerting ones to the listeners."""
    for transition in transitions:
        fields = {
            "component_id": transition.component_id,
            "slug": transition.slug,
            "from_state": transition.from_state,
            "to_state": transition.to_state,
            "in_maintenance": transition.in_maintenance,
        }
        if transition.to_state == State.UNHEALTHY:
            log.warning("component.became_unhealthy", **fields)
        else:
            log.info("component.state_changed", **fields)
        if transition.alerts:
            _call_listeners(transition)


def _call_listeners(transition: Transition) -> None:
    for listener in list(_listeners):
        try:
            listener(transition)
        except Exception:
            log.exception(
                "component.listener_failed",
                component_id=transition.component_id,
                listener=getattr(listener, "__qualname__", repr(listener)),
            )
