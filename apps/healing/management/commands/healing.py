"""``manage.py healing list|attempts|heal SLUG --reason ..`` with --format."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent
from apps.healing.models import HealingAttempt, HealingPolicy
from apps.healing.selectors import attempt_list, policy_list
from apps.healing.services import healing_heal_now

COLUMNS = ["component", "action", "episode", "attempts", "paused", "dry_run", "next"]
ATTEMPT_COLUMNS = ["started", "component", "number", "action", "outcome", "output"]


class Command(BaseCommand):
    help = "List healing policies and attempts, or heal a component now."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add_format_argument(sub.add_parser("list", help="Every healing policy."))
        attempts = sub.add_parser("attempts", help="Healing attempts, newest first.")
        attempts.add_argument("slug", nargs="?", help="of this component only")
        attempts.add_argument("--limit", type=int, default=50)
        add_format_argument(attempts)
        heal = sub.add_parser("heal", help="Heal a component now.")
        heal.add_argument("slug")
        heal.add_argument("--reason", required=True, help="recorded in the audit")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "heal":
                self._heal(options["slug"], options["reason"])
            elif options["action"] == "attempts":
                self._attempts(**options)
            else:
                rows = [_policy_row(policy) for policy in policy_list()]
                self._render(rows, COLUMNS, options["output_format"])
        except OpsError as exc:
            raise CommandError(exc.message) from exc

    def _heal(self, slug: str, reason: str) -> None:
        source = AuditEvent.Source.CLI
        healing_heal_now(slug=slug, reason=reason, actor=None, source=source)
        self.stdout.write(f"{slug}: healing requested.")

    def _attempts(self, *, slug: str | None, limit: int, **options: Any) -> None:
        rows = [_attempt_row(a) for a in attempt_list(slug=slug)[: max(1, limit)]]
        self._render(rows, ATTEMPT_COLUMNS, options["output_format"])

    def _render(self, rows: list[dict[str, str]], columns: list[str], fmt: str) -> None:
        self.stdout.write(render_rows(rows, columns=columns, output_format=fmt))


def _policy_row(policy: HealingPolicy) -> dict[str, str]:
    return {
        "component": policy.component.slug,
        "action": policy.action,
        "episode": policy.episode,
        "attempts": f"{policy.episode_attempts}/{policy.max_attempts}",
        "paused": "yes" if policy.paused else "no",
        "dry_run": "yes" if policy.dry_run else "no",
        "next": iso(policy.next_attempt_at),
    }


def _attempt_row(attempt: HealingAttempt) -> dict[str, str]:
    return {
        "started": iso(attempt.started_at),
        "component": attempt.component.slug,
        "number": str(attempt.number),
        "action": attempt.action,
        "outcome": attempt.outcome,
        "output": attempt.output.splitlines()[0][:80] if attempt.output else "",
    }
