"""Flow 3 starts here: components' alerting transitions request or end healing."""

from collections.abc import Sequence

from apps.components.models import State
from apps.components.state import UP
from apps.components.transitions import Transition, transitions_listener
from apps.healing.models import HealingPolicy
from apps.healing.services import healing_recovered, healing_request


@transitions_listener
def heal_on_transitions(transitions: Sequence[Transition]) -> None:
    """Unhealthy: start an episode; up again: end it.

    Only a component with a healing policy has either: one query finds them for the
    whole batch, so a batch of first checks (each a transition) costs no more."""
    with_policy = set(
        HealingPolicy.objects.filter(
            component_id__in={t.component_id for t in transitions}
        ).values_list("component_id", flat=True)
    )
    for transition in transitions:
        if transition.component_id not in with_policy:
            continue
        if transition.to_state == State.UNHEALTHY:
            healing_request(
                component_id=transition.component_id,
                reason=transition.message or "became unhealthy",
                now=transition.at,
            )
        elif transition.to_state in UP:
            healing_recovered(component_id=transition.component_id, now=transition.at)
