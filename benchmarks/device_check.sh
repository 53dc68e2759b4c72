#!/usr/bin/env bash
# The GPU check in one call (issue 13): the CUDA tests, then HRNet-W32 frames/s and the lifter's per-person time,
# printed as one table. At most about 8 minutes on a CUDA machine (each step has its own time limit); on a machine
# without CUDA every GPU row says "skipped" with the reason and the script still exits 0.
#
#   bash benchmarks/device_check.sh            # writes outputs/device_check/ (or $OUT/ when set)
#
# Python: the project's .venv when there is one (scripts/env.sh), else python3 with the repository on PYTHONPATH
# (a GPU machine's own PyTorch). The node test needs rclpy and the built petr_ros_msgs in that interpreter; where
# they are missing it skips and says so.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -f "${PETR_VENV:-$ROOT/.venv}/bin/activate" ]; then
  . scripts/env.sh
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || PY=python
DEST="${OUT:-$ROOT/outputs/device_check}"
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1 PETR_TEST_DOMAIN_BASE="${PETR_TEST_DOMAIN_BASE:-160}"
started=$(date +%s)
echo "device check: $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.cuda.is_available())')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# 1. the CUDA tests (4 minutes at most); -p no:cacheprovider: the tree may be read-only
timeout 240 "$PY" -m pytest -q -rA -p no:cacheprovider test/test_cuda.py --junitxml="$DEST/cuda_tests.xml" \
  2>&1 | tee "$DEST/cuda_tests.log" | tail -n 25
tests_rc=${PIPESTATUS[0]}

# 2. the measurements in what is left of 8 minutes (torch.compile only while time remains), then the table
left=$(( 470 - ($(date +%s) - started) ))
[ "$left" -lt 60 ] && left=60
timeout "$left" "$PY" benchmarks/benchmark_gpu.py --junit "$DEST/cuda_tests.xml" --budget-s $(( left - 40 )) \
  2>&1 | tee "$DEST/table.txt"
bench_rc=${PIPESTATUS[0]}
echo "device check done in $(( $(date +%s) - started )) s (tests exit $tests_rc, measurements exit $bench_rc); files in $DEST"
# pytest: 0 passed, 5 nothing collected; skipped-only runs are 0. Anything else is a failure of the check.
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
