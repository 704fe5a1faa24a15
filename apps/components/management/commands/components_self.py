"""``manage.py components_self``: register the console's own services as components."""

from typing import Any

from django.core.management.base import BaseCommand

from apps.components.services import components_ensure_self


class Command(BaseCommand):
    help = (
        "Register the console's own PostgreSQL, Redis and Celery workers as "
        "components (existing ones are left as they are)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        slugs = [component.slug for component in components_ensure_self()]
        self.stdout.write(f"Console components: {', '.join(slugs)}")
