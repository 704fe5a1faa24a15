from django.apps import AppConfig


class ComponentsConfig(AppConfig):
    name = "apps.components"
    label = "components"
    verbose_name = "Components"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from apps.components.selectors import components_live
        from apps.live import snapshots

        snapshots.register("components", components_live)

        # Apps register Python-callable checkers in a ``component_checks`` module.
        autodiscover_modules("component_checks")
