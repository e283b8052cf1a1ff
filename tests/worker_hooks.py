"""Test-only hooks that a Celery worker loads with ``--include tests.worker_hooks``.

``SALON_TEST_PAUSE_AFTER_CLAIM=<path>`` makes the first refit claim in the
worker stop right after its RUNNING ``TasteModel`` row is committed: the
prefork child writes ``<pid> <row id>`` to ``<path>`` and sleeps until it is
killed. A test can then kill a worker that is provably in the middle of a
refit, with no timing guess. Later claims, such as the redelivered task,
find the file and run on; production workers never load this module.
"""

import os
import time

from django.db import transaction
from django.db.models.signals import post_save

PAUSE_ENV = "SALON_TEST_PAUSE_AFTER_CLAIM"
# Upper bound on the pause, so a child whose test died does not sleep forever.
PAUSE_SECONDS = 300


def pause_after_first_claim(sender, instance, created, **kwargs):
    path = os.environ.get(PAUSE_ENV)
    if not path or not created or instance.status != "running":
        return

    def pause():
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(descriptor, f"{os.getpid()} {instance.pk}".encode())
        os.close(descriptor)
        deadline = time.monotonic() + PAUSE_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.5)

    # After the commit, so that other processes read the row as RUNNING.
    transaction.on_commit(pause)


post_save.connect(pause_after_first_claim, sender="scoring.TasteModel", dispatch_uid="salon-test-pause-after-claim")
