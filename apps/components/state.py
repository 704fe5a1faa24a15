"""The state machine: one result in, the component's next state out. Pure."""

from dataclasses import dataclass

from apps.components.models import State, Status

UP = frozenset({State.HEALTHY, State.DEGRADED})
DOWN = frozenset({State.UNHEALTHY, State.IMPACTED})


@dataclass(frozen=True, slots=True)
class Streak:
    state: str
    failures: int
    successes: int


def state_next(
    *,
    current: Streak,
    status: str,
    failure_threshold: int,
    success_threshold: int,
    dependency_down: bool,
) -> Streak:
    """Apply one result: leaving an up state takes ``failure_threshold`` failures in a
    row, leaving a down state ``success_threshold`` successes in a row."""
    if status == Status.UNHEALTHY:
        failures, successes = current.failures + 1, 0
        down = State.IMPACTED if dependency_down else State.UNHEALTHY
        state = current.state
        if state not in DOWN and failures >= failure_threshold:
            state = down
        elif state == State.IMPACTED and down == State.UNHEALTHY:
            # The dependency is back but this one is still failing: now it's ours.
            state = State.UNHEALTHY
        return Streak(state, failures, successes)
    failures, successes = 0, current.successes + 1
    # Nothing to protect from flapping on the first result, or between two up states.
    if current.state not in DOWN or successes >= success_threshold:
        return Streak(status, failures, successes)
    return Streak(current.state, failures, successes)
