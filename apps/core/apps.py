from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Console"

    def ready(self) -> None:
        from apps.core import trace

        trace.connect_celery_signals()
