from django.apps import AppConfig


class BreakersConfig(AppConfig):
    name = "apps.breakers"
    label = "breakers"
    verbose_name = "Circuit breakers"

    def ready(self) -> None:
        from apps.breakers.selectors import breaker_trace_items
        from apps.core import trace_index

        trace_index.register("breakers", breaker_trace_items)
