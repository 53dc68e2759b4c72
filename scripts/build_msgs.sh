#!/usr/bin/env bash
# Builds the petr_ros_msgs interfaces (msg/) with CMake against the ROS 2 wheels and installs them into the venv,
# so that `from petr_ros_msgs.msg import SkeletonArray` works without a ROS install.
# Idempotent and quick: skipped when a stamp of the .msg files, CMakeLists.txt and package.xml matches the installed
# one (and the module imports). In a real ROS 2 workspace use colcon instead (docs/node.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VIRTUAL_ENV:-${PETR_VENV:-$ROOT/.venv}}"
BUILD="$ROOT/.build/msgs"
STAMP_FILE="$VENV/share/petr_ros_msgs/.petr_msgs_stamp"
log() { printf '[build_msgs] %s\n' "$*"; }

PY="$VENV/bin/python"
stamp="$(cd "$ROOT/msg" && cat CMakeLists.txt package.xml ./*.msg "$ROOT/scripts/build_msgs.sh" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$stamp" ] \
   && "$PY" -c "import petr_ros_msgs.msg" >/dev/null 2>&1; then
  log "petr_ros_msgs up to date"
  exit 0
fi
t0=$(date +%s)

# The wheels' exported CMake files name the include directories of the interpreter that built them
# (/opt/python/...). Point them at this interpreter's Python and numpy headers. Idempotent: only paths that do not
# exist are rewritten, and only in files that still contain them.
py_inc="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$PY" -c 'import numpy; print(numpy.get_include())')"
mapfile -t exports < <(grep -l '/opt/python/' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true)
for f in "${exports[@]}"; do
  # Python include dir, then numpy's (numpy 2 layout `numpy/_core/include` or numpy 1 `numpy/core/include`).
  sed -i -E \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/(_core|core)/include#${np_inc}#g" \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#${py_inc}#g" \
    "$f"
done
[ "${#exports[@]}" -gt 0 ] && log "patched Python/numpy include paths in ${#exports[@]} exported CMake files"

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
mkdir -p "$BUILD"
log "configuring"
cmake -S "$ROOT/msg" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release > "$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log" >&2; log "cmake configure failed (log: $BUILD/configure.log)"; exit 1; }
log "building and installing into $VENV"
cmake --build "$BUILD" --target install -j "$(nproc)" > "$BUILD/build.log" 2>&1 \
  || { tail -n 60 "$BUILD/build.log" >&2; log "build failed (log: $BUILD/build.log)"; exit 1; }
"$PY" -c "from petr_ros_msgs.msg import Skeleton, SkeletonArray, PersonBoxes" \
  || { log "built, but petr_ros_msgs does not import"; exit 1; }
mkdir -p "$(dirname "$STAMP_FILE")"
echo "$stamp" > "$STAMP_FILE.tmp" && mv "$STAMP_FILE.tmp" "$STAMP_FILE"
log "petr_ros_msgs built in $(( $(date +%s) - t0 )) s"
