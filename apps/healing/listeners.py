"""Flow 3 starts here: components' alerting transitions request or end healing."""

from apps.components.models import State
from apps.components.state import UP
from apps.components.transitions import Transition, transition_listener
from apps.healing.services import healing_recovered, healing_request


@transition_listener
def heal_on_transition(transition: Transition) -> None:
    """Unhealthy: start an episode; up again: end it."""
    if transition.to_state == State.UNHEALTHY:
        healing_request(
            component_id=transition.component_id,
            reason=transition.message or "became unhealthy",
            now=transition.at,
        )
    elif transition.to_state in UP:
        healing_recovered(component_id=transition.component_id, now=transition.at)
