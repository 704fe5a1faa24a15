from django.apps import AppConfig


class BreakersConfig(AppConfig):
    name = "apps.breakers"
    label = "breakers"
    verbose_name = "Circuit breakers"
