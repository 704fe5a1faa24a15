"""`python -m opsconsole.run` (behind `make run`): the whole console on one machine.

Starts PostgreSQL and Valkey under the var directory unless DATABASE_URL / REDIS_URL
are set, migrates, makes sure the ``admin`` operator exists, then supervises daphne, a
Celery worker and Celery beat and prints their output behind a name prefix. SIGINT or
SIGTERM stops everything within 15 s; a child that dies stops the rest (exit 1).
"""
