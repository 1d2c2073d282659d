#!/usr/bin/env bash
# Here, in the repo root, before a GPU session: what the calls on the device carry.
#   .whl/          the wheels of requirements.txt (cp312 manylinux: the device's Python)
#   .device-data/  the data split into tar parts that fit beside the working tree
# Both folders are git-ignored. training/device/README.md is the runbook.
#
#   training/device/kit.sh [--ort-gpu] [DATA_DIR]     (default ../shared/data/ha2mag)
#
# --ort-gpu: also onnxruntime-gpu (256 MB) in pieces, .device-data/*.whl.part-NN, for when
# the device's own onnxruntime lacks the CUDA provider (setup says which it has).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
ort_gpu=0
if [[ ${1:-} == --ort-gpu ]]; then
  ort_gpu=1
  shift
fi
data=${1:-../shared/data/ha2mag}
platforms=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux1_x86_64)
limit_mib=64   # what one device call carries: the working tree plus the carried paths
margin_mib=4   # untracked files, tar headers, rounding

rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: "${platforms[@]}" \
  -d .whl -r training/device/requirements.txt

mib() { awk '{s += $1} END {print int(s / 1048576) + 1}'; }
tree=$(git ls-files -z | xargs -0 stat -c %s | mib)
wheels=$(find .whl -type f -printf '%s\n' | mib)
((tree + wheels + margin_mib <= limit_mib)) || {
  echo "kit.sh: tree $tree MiB + wheels $wheels MiB do not fit one call ($limit_mib MiB)" >&2
  exit 1
}
part=$((limit_mib - tree - margin_mib))
rm -f .device-data/*.whl.part-*
../shared/tools/pack-for-device.sh "$data" .device-data "$part" >/dev/null
if ((ort_gpu)); then
  # The same version as the `cpu` extra resolves here, so CPU and GPU runs compare.
  version=$(for py in .venv/bin/python python3; do
    "$py" -c 'import importlib.metadata as m; print(m.version("onnxruntime"))' 2>/dev/null && break
  done || true)
  [[ -n $version ]] || { echo "kit.sh: no onnxruntime here to match (make install first)" >&2; exit 1; }
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: "${platforms[@]}" -d "$tmp" "onnxruntime-gpu==$version"
  for whl in "$tmp"/*.whl; do split -b "${part}M" -d "$whl" ".device-data/$(basename "$whl").part-"; done
  rm -rf "$tmp"
  echo "onnxruntime-gpu $version: $(ls .device-data/*.whl.part-* | wc -l) pieces (stage them, then setup again)"
fi
echo "tree $tree MiB; .whl $wheels MiB (carry it in the setup call);" \
  "$(ls .device-data/part-*.tar | wc -l) data parts of at most $part MiB (one a call):"
ls .device-data/
