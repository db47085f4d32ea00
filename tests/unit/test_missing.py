"""The suite's rule for a missing part (tests/support/missing.py): a skip with one line of reason
locally, a failure under CI=true; and the contract suite's HTTP transport never drops out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.missing import require

ROOT = Path(__file__).resolve().parents[2]


def python(ci: str, *args: str) -> subprocess.CompletedProcess[str]:
    """This Python run from the repository root with CI set to `ci`; its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_module_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the tests need it"):
        require("workclaim_no_such_module", "the tests need it")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable under CI=true: the tests need it"):
        require("workclaim_no_such_module", "the tests need it")


def test_a_broken_import_is_an_error_not_a_missing_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "workclaim_broken_module.py").write_text("from os import no_such_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(ImportError, match="no_such_name"):
        require("workclaim_broken_module", "the tests need it")


# Runs one contract test on SQLite, both transports, in a Python where the `server` extra's
# FastAPI cannot be imported (None in sys.modules makes `import fastapi` fail as if absent).
_WITHOUT_SERVER_EXTRA = """
import sys
sys.modules["fastapi"] = None
import pytest
sys.exit(pytest.main([
    "-p", "no:cacheprovider", "-q", "-rfs", "tests/contract/test_enqueue.py",
    "-k", "test_enqueue_gives_increasing_ids and sqlite",
]))
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_the_http_transport_without_the_server_extra_is_never_silently_dropped(ci: str) -> None:
    done = python(ci, "-c", _WITHOUT_SERVER_EXTRA)
    summary = done.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary, done.stdout  # the direct transport
    if ci:
        assert done.returncode == 1 and "1 error" in summary, done.stdout  # in its fixture
        assert "unavailable under CI=true: the HTTP transport needs the `server` extra" in (
            done.stdout
        )
    else:
        assert done.returncode == 0 and "1 skipped" in summary, done.stdout


_SKIPS = """
import pytest

def test_a_plain_skip():
    pytest.skip("no frobnicator here")

def test_not_applicable():
    pytest.skip("not applicable: only SQLite has this step")

@pytest.mark.skip(reason="soak scenario: run with `make soak` (--soak)")
def test_a_soak_scenario():
    pass
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_under_ci_only_a_not_applicable_skip_stays_a_skip(ci: str, tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(_SKIPS)
    (tmp_path / "test_module_skip.py").write_text(
        'import pytest\n\npytest.importorskip("workclaim_no_such_module")\n'
    )
    options = ["-p", "tests.support.missing", "-p", "no:cacheprovider", "-q", "-rfs"]
    options += ["--continue-on-collection-errors", "--rootdir", str(tmp_path)]
    done = python(ci, "-m", "pytest", *options, str(tmp_path))
    summary = done.stdout.strip().splitlines()[-1]
    if ci:
        assert "1 failed, 2 skipped, 1 error" in summary, done.stdout
        assert "ERROR" in done.stdout and "test_module_skip.py" in done.stdout, done.stdout
        assert "FAILED" in done.stdout and "test_a_plain_skip" in done.stdout, done.stdout
        assert "not as 'not applicable': no frobnicator here" in done.stdout, done.stdout
    else:
        assert "4 skipped" in summary and "failed" not in summary, done.stdout
