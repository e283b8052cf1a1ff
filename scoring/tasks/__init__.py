"""Celery tasks of the scoring app.

Celery's autodiscovery imports this package in every worker; each task
family lives in its own module, imported here so its tasks are registered.
No module here imports torch at import time, so the prefork parent never
loads a model.
"""

from scoring.tasks import features, refit, scheduler  # noqa: F401
