from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "apps.healing"
    label = "healing"
    verbose_name = "Healing"

    def ready(self) -> None:
        # Flow 3 starts from components' transitions (the listener registers itself).
        from apps.healing import listeners  # noqa: F401
        from apps.healing.selectors import healing_live
        from apps.live import snapshots

        snapshots.register("healing", healing_live)
