"""Shared plumbing of Salon's Celery tasks.

:func:`salon_task` declares a task with the habits every Salon task needs.
Each has an explicit dotted name, which routes it to its queue, soft and hard
time limits, and a capped retry policy for transient database errors. Each
run logs its outcome and duration in milliseconds. GPU tasks also acknowledge
late and are rejected back to the queue when their worker process dies. That
is safe only because each of them is idempotent.

The worker signal handlers here set the torch thread count of each prefork
child, so that the children together use the machine's cores once.
"""

import logging
import time

from celery import Task, shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init
from django.db import OperationalError

from scoring.backbones import configure_torch_threads, set_worker_concurrency

logger = logging.getLogger(__name__)

# Endless retries amplify an outage. Five, with backoffs of up to 10, 20, 40,
# 80 and 160 s (jitter picks a random delay below each), end within about
# five minutes.
DEFAULT_MAX_RETRIES = 5

# Errors worth a retry: a locked SQLite database or a dropped PostgreSQL
# connection (OperationalError), and a soft time limit, after which an
# idempotent task resumes with the work it had not finished.
TRANSIENT_ERRORS = (OperationalError, SoftTimeLimitExceeded)


class SalonTask(Task):
    """Base class of Salon's tasks: timing log and retry policy."""

    max_retries = DEFAULT_MAX_RETRIES
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 10
    retry_backoff_max = 300
    retry_jitter = True

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = super().__call__(*args, **kwargs)
            outcome = "succeeded"
            return result
        except Retry:
            outcome = "will retry"
            raise
        finally:
            logger.info(
                "Task %s[%s] %s in %d ms (retry %d)", self.name, self.request.id, outcome,
                round((time.perf_counter() - started) * 1000), self.request.retries or 0,
            )


# Task name -> the queue its declaration names. Routing itself is done by
# CELERY_TASK_ROUTES, because Celery deprecates the per-task ``queue``
# attribute; the test suite checks that the routes agree with these.
DECLARED_QUEUES = {}


def salon_task(*, name, soft_time_limit, time_limit, queue=None, gpu=False, max_retries=DEFAULT_MAX_RETRIES,
               **options):
    """Return a decorator that registers a bound Salon task.

    Parameters
    ----------
    name : str
        Dotted task name; callers may send the task by this name.
    queue : str, optional
        The queue ``CELERY_TASK_ROUTES`` sends this name to: ``gpu`` for
        ``scoring.tasks.features.*`` and ``scoring.tasks.refit.*``, else
        ``default``. Recorded in :data:`DECLARED_QUEUES`, not passed to Celery.
    soft_time_limit, time_limit : int
        Seconds before :class:`~celery.exceptions.SoftTimeLimitExceeded` is
        raised in the task, and before its process is killed.
    gpu : bool, default=False
        Acknowledge late and reject on worker loss, so a killed worker's task
        goes back to the queue. Only for idempotent tasks.
    max_retries : int, default=5
    """
    if not 0 < soft_time_limit < time_limit:
        raise ValueError(
            f"Task {name}: soft_time_limit ({soft_time_limit}) must be positive and below time_limit ({time_limit})."
        )
    if queue is not None:
        DECLARED_QUEUES[name] = queue
    if gpu:
        options.setdefault("acks_late", True)
        options.setdefault("reject_on_worker_lost", True)

    def decorate(function):
        return shared_task(
            bind=True, base=SalonTask, name=name, soft_time_limit=soft_time_limit,
            time_limit=time_limit, max_retries=max_retries, **options,
        )(function)

    return decorate


@worker_init.connect
def record_worker_concurrency(sender=None, **kwargs):
    """Remember the number of prefork children; each child gets cores divided by it."""
    set_worker_concurrency(getattr(sender, "concurrency", None))


@worker_process_init.connect
def configure_child_threads(**kwargs):
    """Set the torch thread count of a freshly forked worker child.

    Torch itself is imported later, when a task first loads a model, so
    children that only serve the ``default`` queue never pay for it. The
    OpenMP variables set here, and the explicit call when the model loads,
    give that torch the count.
    """
    threads = configure_torch_threads()
    logger.debug("Worker child will run torch with %d threads", threads)
