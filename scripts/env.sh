# Sourced by the Makefile and scripts: activates .venv and sets what ROS 2 needs without a ROS install.
# ROS_DOMAIN_ID: a per-user default away from 0 so runs do not talk to other graphs on the machine;
# tests pick their own distinct ids.
_petr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "${PETR_VENV:-$_petr_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$_petr_root/.ros/log}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ( $(id -u) % 50 ) + 42 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export PETR_ASSETS="${PETR_ASSETS:-$_petr_root/assets}"
# OpenMP threads that spin while waiting steal the cores the camera driver and the node's other threads need:
# with other processes on the cores, a 2-thread eager HRNet frame took 7-66x longer with spinning waits than with
# PASSIVE (benchmarks/benchmark_threads.py, docs/model.md "Threads"; MediaPipe does not care). An exported
# OMP_WAIT_POLICY is kept; PETR_OMP_DEFAULT_WAIT=1 leaves libgomp's default (spin, then sleep). The HRNet front
# end's default form (BatchNorm folded, branch-parallel: 3 OpenMP regions a forward instead of 1,758) runs
# within about 10 % of the same speed under either policy; the eager module was about twice as fast without
# PASSIVE on cores nothing else uses (benchmarks/benchmark_backbone.py, docs/model.md "PyTorch inference forms").
if [ "${PETR_OMP_DEFAULT_WAIT:-0}" = 1 ]; then
  unset OMP_WAIT_POLICY
else
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
fi
mkdir -p "$ROS_LOG_DIR"
unset _petr_root
