"""The protocol models checked by SPIN: every property holds on the model, and each mutant (one
rule broken) gives a counterexample, so each property is shown to bite. `model/lease.pml` is the
lease protocol every backend follows; `model/floor.pml` the scan floor PostgreSQL's claims are to
start from (issue 18), checked before it is built.

SPIN writes a C verifier (`pan.c`) that gcc compiles and runs; the search is exhaustive over the
model's small world (docs/model.md). Needs Debian's `spin` (installed by `.ci/services.sh`);
without it the tests are unavailable (a failure under CI=true). `make model` runs the checks,
`make model-mutants` the mutants.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.missing import unavailable

MODEL = Path(__file__).resolve().parents[2] / "model" / "lease.pml"
FLOOR_MODEL = MODEL.with_name("floor.pml")
SAFETY = ("one_lease", "limits", "once", "pause_holds")
LIVENESS = "finish"
# mutant -> the property its broken rule must violate
MUTANTS = {
    "NO_TOKEN_CHECK": "once",  # the fence's assertion on a stale write fails in any run
    "CLIENT_CLOCK_REAP": "one_lease",
    "REAP_ANY_STATUS": "once",
    "LIMIT_BEFORE_COMMIT": "limits",
    "NO_PAUSE_CHECK": "pause_holds",
    "NO_REAP": LIVENESS,
}
# mutant of the floor model -> its assertion (a claim's start hides no claimable item) fails
FLOOR_MUTANTS = (
    "NO_RECORD",
    "RECORD_IF_BELOW",
    "WALK_BEFORE_LOCK",
    "TWO_RAISERS",
    "CLAIM_RAISES",
    "COVERED_UNLOCKED",
)
MAX_DEPTH = "-m200000"


@dataclass(frozen=True)
class Verdict:
    """What one run of the verifier said."""

    errors: int
    states: int
    seconds: float
    output: str


def _tools() -> tuple[str, str]:
    spin, gcc = shutil.which("spin"), shutil.which("gcc")
    if spin is None or gcc is None:
        unavailable("the model check needs Debian's spin and gcc (.ci/services.sh installs spin)")
    return spin, gcc


def _verifier(workdir: Path, defines: tuple[str, ...] = (), model: Path = MODEL) -> Path:
    """Generate and compile the verifier for `model` (with `defines`, e.g. a mutant)."""
    spin, gcc = _tools()
    shutil.copy(model, workdir / model.name)
    subprocess.run([spin, *defines, "-a", model.name], cwd=workdir, check=True, capture_output=True)
    # COLLAPSE compresses stored states (the world fits in a few hundred MB); NFAIR sizes the
    # weak-fairness bookkeeping for the model's processes.
    subprocess.run(
        [gcc, "-O2", "-DCOLLAPSE", "-DNFAIR=3", "-w", "-o", "pan", "pan.c"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return workdir / "pan"


def _check(pan: Path, prop: str | None) -> Verdict:
    """Search for a violation of `prop` (None: of the model's assertions only); a liveness
    property is searched for acceptance cycles under weak fairness."""
    flags = ["-a", "-f"] if prop == LIVENESS else []
    if prop is not None:
        flags += ["-N", prop]
    started = time.monotonic()
    run = subprocess.run(
        [str(pan), MAX_DEPTH, *flags],
        cwd=pan.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    errors = re.search(r"errors: (\d+)", run.stdout)
    states = re.search(r"(\d+) states, stored", run.stdout)
    assert errors is not None, run.stdout + run.stderr
    return Verdict(
        errors=int(errors.group(1)),
        states=int(states.group(1)) if states else 0,
        seconds=seconds,
        output=run.stdout,
    )


@pytest.fixture(scope="module")
def model_pan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _verifier(tmp_path_factory.mktemp("spin"))


@pytest.mark.parametrize("prop", [*SAFETY, LIVENESS])
def test_the_model_keeps_the_property(model_pan: Path, prop: str) -> None:
    verdict = _check(model_pan, prop)
    print(f"\n{prop}: {verdict.states:,} states, {verdict.seconds:.1f} s, 0 errors expected")
    assert verdict.errors == 0, verdict.output
    assert "depth too small" not in verdict.output  # the search was complete
    assert verdict.states > 100_000  # the world really was explored


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_each_mutant_gives_a_counterexample(tmp_path: Path, mutant: str) -> None:
    prop = MUTANTS[mutant]
    verdict = _check(_verifier(tmp_path, (f"-DMUTANT_{mutant}",)), prop)
    print(f"\n{mutant}: counterexample for {prop} after {verdict.seconds:.1f} s")
    assert verdict.errors > 0, f"{mutant} broke a rule but SPIN found no violation of {prop}"
    assert list(tmp_path.glob("*.trail")), "a counterexample leaves a trail file"


def test_the_floor_hides_no_claimable_item(tmp_path: Path) -> None:
    verdict = _check(_verifier(tmp_path, model=FLOOR_MODEL), None)
    print(f"\nfloor: {verdict.states:,} states, {verdict.seconds:.1f} s, 0 errors expected")
    assert verdict.errors == 0, verdict.output
    assert "depth too small" not in verdict.output
    assert verdict.states > 50_000


@pytest.mark.parametrize("mutant", FLOOR_MUTANTS)
def test_each_floor_mutant_gives_a_counterexample(tmp_path: Path, mutant: str) -> None:
    verdict = _check(_verifier(tmp_path, (f"-DMUTANT_{mutant}",), FLOOR_MODEL), None)
    assert verdict.errors > 0, f"{mutant} broke a rule but SPIN found no hidden item"
    assert "assertion violated" in verdict.output, verdict.output
