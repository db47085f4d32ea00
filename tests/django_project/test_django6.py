"""The same Django tests again under Python 3.12 and Django 6 (`django.tasks`), in the second
environment `make venv312` builds from the lock; this run itself is Python 3.11 and the
`django-tasks` backport."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.missing import unavailable

ROOT = Path(__file__).parents[2]
PYTHON312 = ROOT / ".venv312" / "bin" / "python"


def test_the_framework_is_the_one_this_python_gets(site: object) -> None:
    import django

    from workclaim.django._compat import FRAMEWORK

    if sys.version_info >= (3, 12):
        assert (FRAMEWORK, django.VERSION[0]) == ("django.tasks", 6)
    else:
        assert FRAMEWORK == "django_tasks"
        assert django.VERSION[:2] == (5, 2)


@pytest.mark.timeout(900)
def test_the_django_tests_pass_on_python_312_and_django_6() -> None:
    if sys.version_info >= (3, 12):
        pytest.skip("not applicable: this is the Python 3.12 run")
    if not PYTHON312.exists():
        unavailable("no .venv312 (make venv312 needs a python3.12 on PATH or in pyenv)")
    here = Path(__file__).parent.relative_to(ROOT)
    done = subprocess.run(
        [str(PYTHON312), "-m", "pytest", str(here), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
