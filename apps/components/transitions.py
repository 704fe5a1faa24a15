"""Transition listeners: where notifications and healing (#6) plug in.

``@transition_listener`` registers a function that is called after commit with each
transition that should alert: not in maintenance, not into *impacted* (the
dependency alerts instead), and not a recovery from *impacted*.
``@transitions_listener`` registers one called once per recorded batch with all of
its alerting transitions, so its queries cost the same for one or a hundred.
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
BatchListener = Callable[[Sequence[Transition]], object]
_listeners: list[Listener] = []
_batch_listeners: list[BatchListener] = []


def transition_listener(listener: Listener) -> Listener:
    """Call ``listener`` with every alerting transition, after its commit."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def transition_listener_remove(listener: Listener) -> None:
    """Stop calling ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)


def transitions_listener(listener: BatchListener) -> BatchListener:
    """Call ``listener`` once per recorded batch with its alerting transitions (in
    order, never none), after their commit."""
    if listener not in _batch_listeners:
        _batch_listeners.append(listener)
    return listener


def transitions_listener_remove(listener: BatchListener) -> None:
    """Stop calling ``listener``."""
    if listener in _batch_listeners:
        _batch_listeners.remove(listener)


def transitions_emit(transitions: Sequence[Transition]) -> None:
    """Log each transition and hand the alerting ones to the listeners."""
    alerting = []
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
            alerting.append(transition)
            _call_listeners(transition)
    if alerting:
        _call_batch_listeners(alerting)


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


def _call_batch_listeners(transitions: list[Transition]) -> None:
    for listener in list(_batch_listeners):
        try:
            listener(transitions)
        except Exception:
            log.exception(
                "component.listener_failed",
                component_ids=[t.component_id for t in transitions],
                listener=getattr(listener, "__qualname__", repr(listener)),
            )
