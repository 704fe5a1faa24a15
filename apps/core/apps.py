from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Console"

    def ready(self) -> None:
        from apps.core import trace, trace_index
        from apps.core.selectors import audit_feed_recent, audit_trace_items
        from apps.live import snapshots

        trace.connect_celery_signals()
        snapshots.register("events", audit_feed_recent)
        trace_index.register("audit", audit_trace_items)
