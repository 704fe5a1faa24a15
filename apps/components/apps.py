from django.apps import AppConfig


class ComponentsConfig(AppConfig):
    name = "apps.components"
    label = "components"
    verbose_name = "Components"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from apps.components.notifications.services import notify_transitions
        from apps.components.selectors import component_trace_items, components_live
        from apps.components.transitions import transitions_listener
        from apps.core import trace_index
        from apps.live import snapshots

        snapshots.register("components", components_live)
        transitions_listener(notify_transitions)
        trace_index.register("components", component_trace_items)

        # Apps register Python-callable checkers in a ``component_checks`` module.
        autodiscover_modules("component_checks")
