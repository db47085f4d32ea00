#!/usr/bin/env bash
# Create benchmarks/peers/.venv (separate from the project's .venv) with the peers from PyPI at the
# exact versions of requirements.txt (compiled from requirements.in by `make deps-upgrade`, hashes
# checked), plus workclaim itself, editable, with no dependency of its own beyond that file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
stamp="$venv/.installed"
uv="${UV:-$repo/.tools/bin/uv}"
python="${PYTHON:-python3}"
if [[ -f "$stamp" && "$stamp" -nt "$here/requirements.txt" && "$stamp" -nt "$repo/pyproject.toml" ]]; then
    exit 0
fi
[[ -x "$uv" ]] || make -C "$repo" "${uv#"$repo/"}"
export UV_PYTHON_DOWNLOADS=never
[[ -x "$venv/bin/python" ]] || "$uv" venv --quiet --python "$python" "$venv"
"$uv" pip sync --quiet --python "$venv/bin/python" --require-hashes "$here/requirements.txt"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps -e "$repo"
touch "$stamp"
echo "peers virtualenv ready: $venv"
