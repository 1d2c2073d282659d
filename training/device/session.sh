#!/usr/bin/env bash
# On the GPU machine that the device tool lends, in the repo root: one verb a `run` call.
#
#   training/device/session.sh setup             wheels carried in .whl/ -> site; GPU, torch,
#                                                onnxruntime providers, the chain's imports
#   training/device/session.sh stage PART...     unpack data parts; counts files (train 788, val 260);
#                                                pieces of a large wheel (NAME.whl.part-NN, kit.sh
#                                                --ort-gpu) are kept for the next setup
#   training/device/session.sh launch NAME CONFIG [RETRAIN ARGS...]
#                                                `synmag-train retrain` in the background, in its
#                                                own session, so it outlives the call
#   training/device/session.sh wait [SECONDS]    until every launched run has ended (exit 0) or
#                                                SECONDS (default 540) have passed (exit 3)
#   training/device/session.sh collect [NAME...] every run's reports and logs -> $OUT/results.tar.gz,
#                                                the ONNX of each NAME -> $OUT in 15 MiB parts
#   training/device/session.sh py ARGS...        python3 ARGS in the same environment
#                                                (-m bench train_throughput, -m training.cli ensemble ...)
#
# SYNMAG_DEVICE_WHEELS: where setup finds the wheels (default .whl, what kit.sh fills).
# Each call is a new shell on a machine that keeps its disk only while it is held, so all
# state lives under SYNMAG_DEVICE_HOME (default /root/synmag): site/ (packages), data/, runs/
# (one NAME/ folder, NAME.log, NAME.pid and NAME.rc a run), registry.db and store/ (the
# registry the runs register into). training/device/README.md is the runbook.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/../.."

home=${SYNMAG_DEVICE_HOME:-/root/synmag}
site=$home/site
data=$home/data
runs=$home/runs
wheels=${SYNMAG_DEVICE_WHEELS:-.whl}
py=${PYTHON:-python3}
mkdir -p "$home/home" "$runs"
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HOME=$home/home MPLCONFIGDIR=$home/home/mpl SUNPY_CONFIGDIR=$home/home/sunpy
export SYNMAG_DATABASE_URL=${SYNMAG_DATABASE_URL:-sqlite:///$home/registry.db}
export SYNMAG_STORE_URL=${SYNMAG_STORE_URL:-file://$home/store}
export PYTHONUNBUFFERED=1

# The most $OUT may bring back in one call (the device tool's limits: 8 files, 64 MiB).
OUT_FILES=8
OUT_MIB=64
PART_MIB=15

die() { echo "session.sh: $*" >&2; exit 2; }

setup() {
  local whl
  # A wheel too large for one call came in pieces: join them, and check the zip whole.
  for whl in $(find "$home/pieces" -name '*.whl.part-*' 2>/dev/null | sed 's/\.part-[0-9]*$//' | sort -u); do
    cat "$whl".part-* >"$whl"
    "$py" -m zipfile -t "$whl" >/dev/null || die "setup: $(basename "$whl") is damaged: stage its parts again"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$whl"
    echo "installed $(basename "$whl") from $(ls "$whl".part-* | wc -l) pieces"
    rm -f "$whl" "$whl".part-*
  done
  if compgen -G "$wheels/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$wheels"/*.whl
    echo "installed $(ls "$wheels"/*.whl | wc -l) wheels into $site"
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "nvidia-smi: not available"
  "$py" - <<'EOF'
import onnxruntime as ort
import torch

if torch.cuda.is_available():
    print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
else:
    print("torch", torch.__version__, "WITHOUT CUDA: runs will train on the CPU")
if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu: load CUDA from torch's nvidia-* packages
    try:
        ort.preload_dlls()
    except Exception as exc:  # the CPU package may have the function and nothing to load
        print("onnxruntime.preload_dlls:", exc)
print("onnxruntime", ort.__version__, ort.get_available_providers())
import service.registry, service.settings, training.retrain  # noqa: E401,F401  everything retrain imports
print("imports ok")
EOF
}

stage() {
  (($#)) || die "stage: name the parts"
  mkdir -p "$data" "$home/pieces"
  for part in "$@"; do
    case $part in
      *.whl.part-*) cp "$part" "$home/pieces/" ;;
      *) tar -xf "$part" -C "$data" ;;
    esac
  done
  echo "train $(find "$data/train" -name '*.webp' 2>/dev/null | wc -l) of 788," \
       "val $(find "$data/val" -name '*.webp' 2>/dev/null | wc -l) of 260 files"
}

launch() {
  (($# >= 2)) || die "launch: NAME CONFIG [RETRAIN ARGS...]"
  local name=$1 config=$2
  shift 2
  [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "launch: a run NAME is letters, digits, '.', '_' and '-'"
  [[ ! -e $runs/$name.pid ]] || die "launch: run $name was launched already"
  [[ -d $data/train ]] || die "launch: no data in $data (stage it first)"
  rm -f "$runs/$name.rc"
  setsid nohup "$self" _run "$name" "$py" -m training.cli retrain --data-dir "$data" \
    --config "$config" --name "$name" --out-dir "$runs" --no-promote "$@" \
    >"$runs/$name.log" 2>&1 </dev/null &
  echo $! >"$runs/$name.pid"
  echo "launched $name (pid $!): retrain --config $config $*"
}

# The background side of launch: run the command, then leave its exit status beside the log.
_run() {
  local name=$1
  shift
  local rc=0
  "$@" || rc=$?
  echo "$rc" >"$runs/$name.rc"
}

# A launched run's state: its exit status, "running", or "lost" (gone without one).
run_state() {
  local name=$1
  if [[ -e $runs/$name.rc ]]; then
    echo "exit $(cat "$runs/$name.rc")"
  elif kill -0 "$(cat "$runs/$name.pid")" 2>/dev/null; then
    echo running
  else
    echo lost
  fi
}

launched() {
  local f
  for f in "$runs"/*.pid; do
    [[ -e $f ]] && basename "$f" .pid
  done
}

wait_runs() {
  local limit=${1:-540} start=$SECONDS name busy
  while :; do
    busy=0
    for name in $(launched); do
      [[ $(run_state "$name") == running ]] && busy=$((busy + 1))
    done
    ((busy == 0 || SECONDS - start >= limit)) && break
    sleep 5
  done
  for name in $(launched); do
    echo "$name: $(run_state "$name") | $(grep -E '^(step|val|trained|registered|Traceback|[A-Za-z]*Error)' \
      "$runs/$name.log" | tail -n 1)"
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true
  ((busy == 0)) || exit 3
}

collect() {
  local out=${OUT:?collect: OUT is not set (the device tool sets it)}
  local name onnx files
  # Checkpoints and ONNX files stay behind: only the named runs' ONNX come back, in parts.
  tar -czf "$out/results.tar.gz" -C "$home" --exclude='*.pt' --exclude='*.onnx' --exclude='*.tmp' \
    runs $([[ -e $home/registry.db ]] && echo registry.db)
  for name in "$@"; do
    [[ -d $runs/$name ]] || die "collect: run $name has no ONNX (no folder $runs/$name)"
    onnx=$(find "$runs/$name" -maxdepth 1 -name '*.onnx' | sort | tail -n 1)
    [[ -n $onnx ]] || die "collect: run $name has no ONNX"
    sha256sum "$onnx" | sed "s|$runs/||" >>"$out/SHA256SUMS"
    split -b "${PART_MIB}M" -d "$onnx" "$out/$(basename "$onnx").part-"
  done
  files=$(find "$out" -type f | wc -l)
  ((files <= OUT_FILES)) || die "collect: $files files, the device tool brings back $OUT_FILES: name fewer runs"
  (($(du -sm "$out" | cut -f1) <= OUT_MIB)) || die "collect: over $OUT_MIB MiB: name fewer runs"
  ls -l "$out"
}

verb=${1:-}
(($#)) && shift
case $verb in
  setup) setup ;;
  stage) stage "$@" ;;
  launch) launch "$@" ;;
  _run) _run "$@" ;;
  wait) wait_runs "$@" ;;
  collect) collect "$@" ;;
  py) exec "$py" "$@" ;;
  *) die "usage: session.sh setup | stage PART... | launch NAME CONFIG [ARGS...] | wait [SECONDS] | collect [NAME...] | py ARGS..." ;;
esac
