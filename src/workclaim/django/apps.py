"""The Django app `workclaim.django` (put it in INSTALLED_APPS for `manage.py workclaim_worker`)."""

from __future__ import annotations

from django.apps import AppConfig


class WorkclaimConfig(AppConfig):
    """Adds the `workclaim_worker` management command; defines no models."""

    name = "workclaim.django"
    label = "workclaim"
    verbose_name = "workclaim"
