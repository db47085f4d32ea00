"""Settings of the test project: Django's database and workclaim's store each on SQLite
(`default`) and, when the test gives one, on PostgreSQL (`pg`). The tests pass the locations in
WCSITE_* variables, so a worker started with `manage.py` sees the same stores."""

import os
from urllib.parse import urlsplit

import django

SECRET_KEY = "not-secret: tests only"
USE_TZ = True
INSTALLED_APPS = ["workclaim.django", "shop"]
if django.VERSION < (6,):
    INSTALLED_APPS.append("django_tasks")  # the backport's app (signals, checks)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("WCSITE_SQLITE_DB", ":memory:"),
    }
}
TASKS = {
    "default": {
        "BACKEND": "workclaim.django.WorkclaimBackend",
        "QUEUES": [],  # any queue name
        "OPTIONS": {
            "url": os.environ.get("WCSITE_SQLITE_STORE", "sqlite:///:memory:"),
            "max_attempts": 1,
        },
    }
}

_pg = os.environ.get("WCSITE_PG_DB")  # a postgresql:// URL
if _pg:
    parts = urlsplit(_pg)
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    TASKS["pg"] = {
        "BACKEND": "workclaim.django.WorkclaimBackend",
        "QUEUES": [],
        "OPTIONS": {
            "url": os.environ["WCSITE_PG_STORE"],
            "database": "pg",
            "max_attempts": 1,
        },
    }
