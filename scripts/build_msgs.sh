#!/usr/bin/env bash
# Builds the petr_ros_msgs interfaces (msg/) with CMake against the ROS 2 wheels and installs them into the venv,
# so that `from petr_ros_msgs.msg import SkeletonArray` works without a ROS install. Where the wheels have no
# tf2_msgs, also builds its TFMessage interface from scripts/vendor/tf2_msgs (same definition, same type hash), so
# petr_node can publish /tf; where a real tf2_msgs is installed it is left alone.
# Idempotent and quick: each package is skipped when a stamp of its sources matches the installed one (and it
# imports). In a real ROS 2 workspace use colcon instead (docs/node.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VIRTUAL_ENV:-${PETR_VENV:-$ROOT/.venv}}"
PY="$VENV/bin/python"
log() { printf '[build_msgs] %s\n' "$*"; }

patched=0
patch_exports() {
  # The wheels' exported CMake files name the include directories of the interpreter that built them
  # (/opt/python/...). Point them at this interpreter's Python and numpy headers. Idempotent: only paths that do not
  # exist are rewritten, and only in files that still contain them.
  [ "$patched" = 1 ] && return 0
  local py_inc np_inc f
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
  patched=1
}

# build_interfaces NAME SOURCE_DIR BUILD_DIR IMPORT_CHECK: configure, build and install one interface package into
# the venv. A kept build tree makes a rebuild install nothing that did not change (files in use stay untouched).
build_interfaces() {
  local name="$1" src="$2" build="$3" check="$4" stamp_file="$VENV/share/$1/.petr_msgs_stamp"
  local stamp t0
  stamp="$( (cd "$src" && find . -name '*.msg' -o -name CMakeLists.txt -o -name package.xml | sort | xargs cat; \
             cat "$ROOT/scripts/build_msgs.sh") | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ] && "$PY" -c "$check" >/dev/null 2>&1; then
    log "$name up to date"
    return 0
  fi
  t0=$(date +%s)
  patch_exports
  mkdir -p "$build"
  log "$name: configuring"
  AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" \
  CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" \
    cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" 2>&1 \
    || { cat "$build/configure.log" >&2; log "$name: cmake configure failed (log: $build/configure.log)"; exit 1; }
  log "$name: building and installing into $VENV"
  cmake --build "$build" --target install -j "$(nproc)" > "$build/build.log" 2>&1 \
    || { tail -n 60 "$build/build.log" >&2; log "$name: build failed (log: $build/build.log)"; exit 1; }
  "$PY" -c "$check" || { log "built, but $name does not import"; exit 1; }
  mkdir -p "$(dirname "$stamp_file")"
  echo "$stamp" > "$stamp_file.tmp" && mv "$stamp_file.tmp" "$stamp_file"
  log "$name built in $(( $(date +%s) - t0 )) s"
}

build_interfaces petr_ros_msgs "$ROOT/msg" "$ROOT/.build/msgs" "from petr_ros_msgs.msg import Skeleton, SkeletonArray, PersonBoxes"

# tf2_msgs: ours only where no other one is installed (a stamp file marks ours; a real one has none).
TF_CHECK="from tf2_msgs.msg import TFMessage"
if [ -f "$VENV/share/tf2_msgs/.petr_msgs_stamp" ] || ! "$PY" -c "$TF_CHECK" >/dev/null 2>&1; then
  build_interfaces tf2_msgs "$ROOT/scripts/vendor/tf2_msgs" "$ROOT/.build/msgs_tf2_msgs" "$TF_CHECK"
else
  log "tf2_msgs installed (not ours): using it"
fi
