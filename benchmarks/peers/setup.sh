#!/usr/bin/env bash
# Create benchmarks/peers/.venv (separate from the project's .venv) with the peers from PyPI
# (pinned with lower bounds in requirements.txt, never vendored) plus workclaim itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
stamp="$venv/.installed"
python="${PYTHON:-python3}"
if [[ -f "$stamp" && "$stamp" -nt "$here/requirements.txt" && "$stamp" -nt "$repo/pyproject.toml" ]]; then
    exit 0
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt" -e "$repo[postgres,redis,bench]"
touch "$stamp"
echo "peers virtualenv ready: $venv"
