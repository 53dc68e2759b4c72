#!/usr/bin/env bash
# Creates (or brings up to date) the project's .venv: pinned PyTorch first, then ROS 2 Kilted wheels and the rest,
# the package itself (editable), the ament index entries, the custom messages, and the shipped sample assets.
# Idempotent and quick when nothing changed: each step keeps a stamp of what it was made from.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PETR_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# The editable install maps the top-level packages that exist when it runs: a new one (a new */__init__.py)
# needs a reinstall, so their list is part of the stamp.
req_stamp="$( (cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh"; cd "$ROOT" && ls -d */__init__.py) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$VENV/.petr_requirements" 2>/dev/null)" != "$req_stamp" ]; then
  t0=$(date +%s)
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  log "installing torch (pinned, CPU build unless a CUDA build is already installed)"
  python -m pip install -q -r "$ROOT/requirements/torch.txt"
  log "installing ROS 2 wheels and project requirements"
  python -m pip install -q -r "$ROOT/requirements/ros.txt" -r "$ROOT/requirements/project.txt" \
    -c "$ROOT/requirements/constraints.txt"
  # The optional CPU runtimes (ONNX Runtime, OpenVINO) too, so that their tests run here and in CI.
  log "installing the optional CPU runtimes (requirements/cpu-runtime.txt)"
  python -m pip install -q -r "$ROOT/requirements/cpu-runtime.txt" -c "$ROOT/requirements/constraints.txt"
  python -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  echo "$req_stamp" > "$VENV/.petr_requirements"
  log "python environment ready in $(( $(date +%s) - t0 )) s"
else
  log "python environment up to date"
fi

# ament index + share/ entries, as a colcon install would make them, so that
# get_package_share_directory('petr_ros') works with AMENT_PREFIX_PATH=$VENV. Links keep them current.
share="$VENV/share/petr_ros"
mkdir -p "$share" "$VENV/share/ament_index/resource_index/packages"
touch "$VENV/share/ament_index/resource_index/packages/petr_ros"
for item in package.xml launch config; do
  ln -sfn "$ROOT/$item" "$share/$item"
done

if [ -x "$ROOT/scripts/build_msgs.sh" ]; then
  "$ROOT/scripts/build_msgs.sh"
fi
"$ROOT/scripts/fetch_assets.sh"
log "done"
