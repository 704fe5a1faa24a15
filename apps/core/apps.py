from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Console"

    def ready(self) -> None:
        from apps.core import trace
        from apps.core.selectors import audit_feed_recent
        from apps.live import snapshots

        trace.connect_celery_signals()
        snapshots.register("events", audit_feed_recent)
