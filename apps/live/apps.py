from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "apps.live"
    label = "live"
    verbose_name = "Live"

    def ready(self) -> None:
        from celery import signals

        from apps.live import outcomes, snapshots
        from apps.live.queues import stamp_sent_at
        from apps.live.selectors import queues_latest, workers_latest

        signals.before_task_publish.connect(stamp_sent_at, weak=False)
        # Task outcomes are recorded by the workers only, not by whatever process
        # happens to run a task eagerly (a test, a shell).
        signals.worker_init.connect(outcomes.connect, weak=False)
        snapshots.register("queues", queues_latest)
        snapshots.register("workers", workers_latest)
