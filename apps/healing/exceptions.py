from apps.core.exceptions import Conflict


class HealingPaused(Conflict):
    default_code = "healing_paused"


class HealingDisabled(Conflict):
    """The console switch ``opsconsole.healing.enabled`` is off."""

    default_code = "healing_disabled"
