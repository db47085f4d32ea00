"""Django's Tasks framework on workclaim: `WorkclaimBackend` and `manage.py workclaim_worker`.

    INSTALLED_APPS = [..., "workclaim.django"]
    TASKS = {"default": {"BACKEND": "workclaim.django.WorkclaimBackend",
                         "OPTIONS": {"url": "postgresql://app@db/app?schema=jobs"}}}

Works with Django 6 (`django.tasks`) and with the `django-tasks` backport; see docs/django.md.
The backend is imported on first use, so listing the app imports nothing of the framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workclaim.django.backend import WorkclaimBackend

__all__ = ["WorkclaimBackend"]


def __getattr__(name: str) -> Any:
    if name == "WorkclaimBackend":
        from workclaim.django.backend import WorkclaimBackend

        return WorkclaimBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
