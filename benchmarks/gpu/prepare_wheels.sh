#!/usr/bin/env bash
# Download the packages prunebench needs that the H200 machine's image lacks, as CPython 3.12 manylinux x86_64
# wheels, into .whl/ (gitignored), so they travel with the working tree (carry [".whl"]) and install there offline:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#
# The image already has torch 2.11 (CUDA 13), torchvision, numpy, scipy, pandas, matplotlib, opencv, pyyaml, typer,
# rich, tqdm, requests, psutil, attrs, typing-extensions, pytest and hypothesis. Missing: ultralytics (+ its thop),
# pycocotools, faster-coco-eval, orjson and jsonschema (+ its three deps). Every wheel is fetched with --no-deps, so
# each needed dependency is named below; versions match pyproject.toml / the project's venv (one version each: two
# versions of one package stop the whole install there).
# Left out on purpose: polars (~40 MB; Ultralytics imports it only to plot or read results.csv, which the harness's
# trainer switches off), ultralytics-platform (Ultralytics imports it lazily, for its cloud API only).
#
# Also writes .whl/GIT_SHA: the device gets the working tree without .git, and the run records read the sha from it.
#
#   bash benchmarks/gpu/prepare_wheels.sh          # then: du -sh .whl  (must stay well under 64 MiB with the tree)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.whl"
PY="${PYTHON:-python3}"

PACKAGES=(
  ultralytics==8.4.190
  ultralytics-thop==2.2.3
  pycocotools==2.0.11
  faster-coco-eval==1.8.0
  orjson==3.13.0
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
)

PLATFORMS=()
# pip matches a manylinux tag's glibc version exactly, so every tag a wheel may carry is listed (the machine's glibc
# is newer than all of them).
for n in 39 38 35 34 31 28 27 24 17; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PACKAGES[@]}"

# Exactly one wheel per requested package (a second version would stop the install on the device).
count=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#PACKAGES[@]}" ]; then
  echo "error: expected ${#PACKAGES[@]} wheels in $DEST, found $count" >&2
  exit 1
fi

git -C "$ROOT" rev-parse HEAD > "$DEST/GIT_SHA" 2>/dev/null || echo unknown > "$DEST/GIT_SHA"
ls -1 "$DEST"
du -sh "$DEST"
