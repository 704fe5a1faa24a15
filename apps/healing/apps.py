from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "apps.healing"
    label = "healing"
    verbose_name = "Healing"

    def ready(self) -> None:
        # Flow 3 starts from components' transitions (the listener registers itself).
        from apps.healing import listeners  # noqa: F401
