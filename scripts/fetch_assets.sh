#!/usr/bin/env bash
# Real images, video and motion capture that registry packages ship (no model hub, no data site):
#   opencv-doc (Debian, BSD-3)          messi5.jpg, basketball1/2.png, vtest.avi
#   assimp-testmodels (Debian)          CMU motion capture 01_01.bvh, 01_03.bvh (+ the malformed Boxing_Toes.bvh)
#   sports2d 0.8.34 (PyPI wheel, BSD-3) Sports2D/Demo/demo.mp4 (read as a file; none of its code is used)
#   pose2sim 0.10.49 (PyPI wheel, BSD-3) Demo_MultiPerson cam01-04.mp4 + Calib.qca.txt -> pose2sim_multi/
#   holosoma-retargeting 0.1.0 (PyPI wheel, Apache-2.0) five mocap climbing takes -> motion/holosoma/
#     (only demo_data/climb/mocap_climb_seq_*; never its OMOMO_new files, which carry OMOMO's own terms)
#   pybullet 3.2.7 (PyPI wheel, zlib) DeepMimic clips humanoid3d_*.txt + humanoid.urdf -> motion/deepmimic/
#   isaaclab 2.3.2.post1 (PyPI wheel, BSD-3) humanoid_amp motions *.npz (body quaternions) -> motion/isaaclab/
# Wheels are only unpacked (pip download --no-deps); none of their code is installed or run.
# Everything lands in assets/ (git-ignored). Skips what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${PETR_ASSETS:-$ROOT/assets}"
CACHE="$ROOT/.cache/downloads"
mkdir -p "$DEST" "$CACHE"
log() { printf '[assets] %s\n' "$*"; }

need_deb() {  # $1 package, $2.. paths inside the package -> copied flat into $DEST
  local pkg="$1"; shift
  local missing=0 p
  for p in "$@"; do [ -s "$DEST/$(basename "$p")" ] || missing=1; done
  [ "$missing" = 1 ] || return 0
  local deb
  deb="$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    log "downloading Debian package $pkg"
    if ! (cd "$CACHE" && apt-get download "$pkg" >/dev/null 2>&1); then
      (apt-get update -qq >/dev/null 2>&1 || true)
      (cd "$CACHE" && apt-get download "$pkg" >/dev/null)
    fi
    deb="$(ls "$CACHE"/"${pkg}"_*.deb | head -n1)"
  fi
  local tmp; tmp="$(mktemp -d)"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" $(printf './%s ' "$@")
  for p in "$@"; do cp "$tmp/$p" "$DEST/"; done
  rm -rf "$tmp"
}

need_deb opencv-doc \
  usr/share/doc/opencv-doc/examples/data/messi5.jpg \
  usr/share/doc/opencv-doc/examples/data/basketball1.png \
  usr/share/doc/opencv-doc/examples/data/basketball2.png \
  usr/share/doc/opencv-doc/examples/data/vtest.avi
need_deb assimp-testmodels \
  usr/share/assimp/models/BVH/01_01.bvh \
  usr/share/assimp/models/BVH/01_03.bvh \
  usr/share/assimp/models/BVH/Boxing_Toes.bvh

if [ ! -s "$DEST/sports2d_demo.mp4" ]; then
  log "downloading the sports2d 0.8.34 wheel (no dependencies) for its demo video"
  python3 -m pip download -q --no-deps -d "$CACHE" sports2d==0.8.34 2>/dev/null
  python3 - "$CACHE" "$DEST" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/sports2d-0.8.34-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(f"{sys.argv[2]}/sports2d_demo.mp4", "wb") as out:
    out.write(z.read("Sports2D/Demo/demo.mp4"))
PY
fi
# need_wheel SPEC PREFIX DEST_SUBDIR MEMBER...: members of a wheel (paths below PREFIX) copied flat into DEST_SUBDIR.
need_wheel() {
  local spec="$1" prefix="$2" sub="$3"; shift 3
  local missing=0 m
  for m in "$@"; do [ -s "$DEST/$sub/$(basename "$m")" ] || missing=1; done
  [ "$missing" = 1 ] || return 0
  local dist="${spec%%==*}" version="${spec##*==}"
  local pattern="${dist//-/_}-${version}-*.whl"
  if ! ls "$CACHE"/$pattern >/dev/null 2>&1; then
    log "downloading the $spec wheel (no dependencies) for its data files"
    python3 -m pip download -q --no-deps -d "$CACHE" "$spec" 2>/dev/null
  fi
  mkdir -p "$DEST/$sub"
  python3 - "$(ls "$CACHE"/$pattern | head -n1)" "$prefix" "$DEST/$sub" "$@" <<'PY'
import os, sys, zipfile
wheel, prefix, dest, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        target = os.path.join(dest, os.path.basename(m))
        with open(target + ".part", "wb") as out:
            out.write(z.read(prefix + m))
        os.replace(target + ".part", target)
PY
}

need_wheel pose2sim==0.10.49 Pose2Sim/Demo_MultiPerson/ pose2sim_multi \
  videos/cam01.mp4 videos/cam02.mp4 videos/cam03.mp4 videos/cam04.mp4 calibration/Calib.qca.txt
need_wheel holosoma-retargeting==0.1.0 holosoma_retargeting/demo_data/climb/ motion/holosoma \
  mocap_climb_seq_0/mocap_climb_seq_0_joint_positions_f900-3700.npy \
  mocap_climb_seq_1/mocap_climb_seq_1_joint_positions_f0-2422.npy \
  mocap_climb_seq_2/mocap_climb_seq_2_joint_positions_f100-3110.npy \
  mocap_climb_seq_3/mocap_climb_seq_3_joint_positions_f200-2600.npy \
  mocap_climb_seq_4/mocap_climb_seq_4_joint_positions_f0-2303.npy
DEEPMIMIC_CLIPS="backflip cartwheel crawl dance_a dance_b getup_facedown getup_faceup jump kick punch roll run spin
  spinkick walk"
need_wheel pybullet==3.2.7 pybullet_data/ motion/deepmimic humanoid/humanoid.urdf \
  $(for c in $DEEPMIMIC_CLIPS; do printf 'data/motions/humanoid3d_%s.txt ' "$c"; done)
need_wheel isaaclab==2.3.2.post1 isaaclab/source/isaaclab_tasks/isaaclab_tasks/direct/humanoid_amp/motions/ \
  motion/isaaclab humanoid_dance.npz humanoid_run.npz humanoid_walk.npz
log "assets in $DEST: $(ls "$DEST" | tr '\n' ' ')"
