"""The Celery app: broker from REDIS_URL (or CELERY_BROKER_URL), tasks found in each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galaxy.settings")

app = Celery("galaxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
