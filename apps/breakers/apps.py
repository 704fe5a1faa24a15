from django.apps import AppConfig


class BreakersConfig(AppConfig):
    name = "apps.breakers"
    label = "breakers"
    verbose_name = "Circuit breakers"

    def ready(self) -> None:
        from apps.breakers.selectors import breaker_trace_items, breakers_live
        from apps.core import trace_index
        from apps.live import snapshots

        trace_index.register("breakers", breaker_trace_items)
        snapshots.register("breakers", breakers_live)
