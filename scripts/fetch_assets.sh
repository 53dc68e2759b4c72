#!/usr/bin/env bash
# Real images, video and motion capture that registry packages ship (no model hub, no data site):
#   opencv-doc (Debian, BSD-3)          messi5.jpg, basketball1/2.png, vtest.avi
#   assimp-testmodels (Debian)          CMU motion capture 01_01.bvh, 01_03.bvh (+ the malformed Boxing_Toes.bvh)
#   sports2d 0.8.34 (PyPI wheel, BSD-3) Sports2D/Demo/demo.mp4 (read as a file; none of its code is used)
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
log "assets in $DEST: $(ls "$DEST" | tr '\n' ' ')"
