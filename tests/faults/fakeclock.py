"""Step the wall clock of chosen worker processes while they run.

`FakeClock` is one offset file; processes spawned inside `clock.applied()` run under
`LD_PRELOAD=clockshim.so` (compiled here with gcc from tests/faults/clockshim.c), which adds the
file's offset to every CLOCK_REALTIME read, so rewriting the file steps their clock. The
monotonic clock stays real: the history's timestamps, which the checker orders by, and every
timeout and sleep are measured on it. Debian's libfaketime would do the same, but its 0.9.10
makes every absolute monotonic sleep fail with EINVAL once the monotonic clock is left unfaked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.missing import unavailable

SOURCE = Path(__file__).with_name("clockshim.c")


def compile_shim(source: Path, out_dir: Path) -> Path:
    """`source` compiled with gcc into a shared object in `out_dir` (or `unavailable`)."""
    if shutil.which("gcc") is None:
        unavailable("gcc is not installed (.ci/services.sh installs it)")
    out = out_dir / (source.stem + ".so")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


class FakeClock:
    """An offset in seconds applied to every process spawned under `applied()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.library = compile_shim(SOURCE, path.parent)
        self.step(0)

    def step(self, seconds: float) -> None:
        """Set the offset from the real clock (absolute, not cumulative)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+.0f}\n")
        tmp.replace(self.path)  # the processes never read a half-written offset

    def offset(self) -> float:
        """The offset a fresh process under this clock sees (proves the shim is in effect)."""
        with self.applied():
            out = subprocess.run(
                [sys.executable, "-c", "import time; print(time.time())"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
        return float(out) - time.time()

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Processes spawned in this block run on this clock (spawn copies the environment)."""
        env = {"LD_PRELOAD": str(self.library), "WCF_CLOCK_FILE": str(self.path)}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
