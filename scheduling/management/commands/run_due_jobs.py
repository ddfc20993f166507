import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from scheduling import tasks

INTERVAL = 30.0  # seconds, as beat's dispatch-due-jobs


class Command(BaseCommand):
    help = (
        "Enqueue the jobs that are due, as beat does every 30 s: once with --once, else every 30 s until Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="dispatch once and exit")

    def handle(self, *args, **options) -> None:
        if options["once"]:
            self.stdout.write(f"run_due_jobs: dispatched {tasks.dispatch()} jobs")
            return
        # Safe beside beat: each due job is claimed by one dispatcher only (Job.claim_due skips locked rows).
        rounds = dispatched = 0
        try:
            while True:
                close_old_connections()  # a connection the database dropped meanwhile is not reused
                try:
                    count = tasks.dispatch()
                except Exception as exc:
                    # The broker or the database is down for a moment: say so, and try again next round.
                    self.stderr.write(f"run_due_jobs: dispatch failed: {type(exc).__name__}: {exc}")
                else:
                    dispatched += count
                    self.stdout.write(f"run_due_jobs: dispatched {count} jobs")
                rounds += 1
                time.sleep(INTERVAL)
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"run_due_jobs: dispatched {dispatched} jobs in {rounds} rounds")
