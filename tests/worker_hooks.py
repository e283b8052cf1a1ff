"""Test-only hooks that a Celery worker loads with ``--include tests.worker_hooks``.

``SALON_TEST_PAUSE_AFTER_CLAIM=<path>`` makes the first refit claim in the
worker stop right after its RUNNING ``TasteModel`` row is committed: the
prefork child writes ``<pid> <row id>`` to ``<path>`` and sleeps until it is
killed. A test can then kill a worker that is provably in the middle of a
refit, with no timing guess. Later claims, such as the redelivered task,
find the file and run on; production workers never load this module.

``SALON_TEST_PAUSE_IN_EXPORT=<path>`` does the same for the first export
file a child writes: it puts a few bytes in the temporary file, writes
``<pid> <temporary path>`` to ``<path>`` and sleeps.
"""

import os
import time

from celery.signals import worker_process_init
from django.db import transaction
from django.db.models.signals import post_save

PAUSE_ENV = "SALON_TEST_PAUSE_AFTER_CLAIM"
EXPORT_PAUSE_ENV = "SALON_TEST_PAUSE_IN_EXPORT"
# Upper bound on the pause, so a child whose test died does not sleep forever.
PAUSE_SECONDS = 300


def pause_after_first_claim(sender, instance, created, **kwargs):
    path = os.environ.get(PAUSE_ENV)
    if not path or not created or instance.status != "running":
        return

    # After the commit, so that other processes read the row as RUNNING.
    transaction.on_commit(lambda: pause_once(path, instance.pk))


def pause_once(path, what):
    """Sleep until killed if this is the first pause of the test, that is when ``path`` does not exist yet."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(descriptor, f"{os.getpid()} {what}".encode())
    os.close(descriptor)
    deadline = time.monotonic() + PAUSE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.5)


@worker_process_init.connect
def pause_in_first_export(**kwargs):
    """Wrap the export writer in each child, once Django is set up there."""
    path = os.environ.get(EXPORT_PAUSE_ENV)
    if not path:
        return
    from comparisons.exports import files

    write_data = files._write_data

    def write_then_pause(rows, file_format, temporary_path):
        temporary_path.write_bytes(b"partial,")
        pause_once(path, temporary_path)
        return write_data(rows, file_format, temporary_path)

    files._write_data = write_then_pause


post_save.connect(pause_after_first_claim, sender="scoring.TasteModel", dispatch_uid="salon-test-pause-after-claim")
