#!/usr/bin/env bash
# The dataset drill (issue 16's bar), against the stand-ins on loopback, from a fresh state:
#
#   1. serve Ha2Mag val days moved 11 years into cycle 25: GONG (synmag replay --dated) and
#      JSOC (synmag jsoc-standin, HMI negated into cycle 25's polarity);
#   2. build 30 steps (every 4 days from 2025-03-19: 116 days, enough for three splits with
#      27-day gaps), killing the build twice at random moments, then run it to completion;
#   3. check: no pair half-written, every pair in the manifest on disk, what was downloaded
#      against what is in raw/ (a rerun fetches only what a kill interrupted);
#   4. retrain with training/configs/smoke.toml on the built folder into a throwaway registry:
#      the registered version's metadata must say solar cycle 25;
#   5. synmag process a built day's GONG frame with that version: POLSIGN must be +1
#      (a cycle-25 model on a cycle-25 frame needs no sign flip).
#
# Usage: training/dataset/drill.sh [WORK_DIR]   (env: PYTHON, DATA_DIR, NAXIS, STEPS_EVERY)
# The repository root must be the current folder. Prints figures; exits non-zero on a failed check.
set -euo pipefail

PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-../shared/data/ha2mag}
NAXIS=${NAXIS:-2048}
WORK=${1:-$(mktemp -d /tmp/synmag-dataset-drill.XXXXXX)}
OUT=$WORK/built
mkdir -p "$WORK"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export HOME=$WORK/home MPLCONFIGDIR=$WORK/mpl SUNPY_CONFIGDIR=$WORK/sunpy
export SYNMAG_DATABASE_URL=sqlite:///$WORK/registry.db SYNMAG_STORE_URL=file://$WORK/store
rm -rf "$OUT" "$WORK/registry.db" "$WORK/store" "$WORK/runs" "$WORK/products"
mkdir -p "$HOME"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

url_of() {  # wait for a stand-in's first line ("... at http://127.0.0.1:PORT ...") and print the URL
  for _ in $(seq 1 600); do
    if grep -qo 'http://127.0.0.1:[0-9]*' "$1" 2>/dev/null; then grep -o 'http://127.0.0.1:[0-9]*' "$1" | head -1; return; fi
    sleep 0.1
  done
  echo "stand-in did not start: $(cat "$1")" >&2; exit 1
}

$PYTHON -m service.cli replay "$DATA_DIR/val" --dated --shift-years 11 --port 0 >"$WORK/gong.out" 2>"$WORK/gong.err" &
PIDS+=($!)
$PYTHON -m service.cli jsoc-standin "$DATA_DIR/val" --shift-years 11 --naxis "$NAXIS" --port 0 >"$WORK/jsoc.out" 2>"$WORK/jsoc.err" &
PIDS+=($!)
GONG_URL=$(url_of "$WORK/gong.out")
JSOC_URL=$(url_of "$WORK/jsoc.out")
echo "stand-ins: GONG $GONG_URL, JSOC $JSOC_URL (level 1 ${NAXIS}px)"

BUILD=($PYTHON -m training.cli dataset build --start 2025-03-19 --end 2025-07-15 --every 4d --out "$OUT"
       --gong-url "$GONG_URL" --jsoc-url "$JSOC_URL" --min-interval 0.2 --quiet)
pairs() { { ls "$OUT"/*_pair.fits 2>/dev/null || true; } | wc -l; }

for kill_no in 1 2; do
  before=$(pairs)
  "${BUILD[@]}" >"$WORK/build$kill_no.out" 2>"$WORK/build$kill_no.err" &
  pid=$!
  while [ "$(pairs)" -le "$before" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  sleep "$($PYTHON -c 'import random; print(round(random.uniform(0, 6), 2))')"
  kill -9 "$pid" 2>/dev/null && echo "kill $kill_no: build killed with $(pairs) pairs on disk" \
    || echo "kill $kill_no: the build had finished before the kill"
  wait "$pid" 2>/dev/null || true
done
raw_before=$(find "$OUT/raw" -type f ! -name '.*' | wc -l)
t0=$(date +%s)
"${BUILD[@]}" >"$WORK/build3.out" 2>"$WORK/build3.err"
echo "completion run: $(( $(date +%s) - t0 )) s; summary:"
tail -n 3 "$WORK/build3.err"

for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
wait "${PIDS[@]}" 2>/dev/null || true
PIDS=()

$PYTHON - "$OUT" "$WORK" "$raw_before" <<'EOF'
import json, re, sys
from pathlib import Path
import numpy as np
from training.dataset.manifest import Manifest
from training.dataset.pairs import read_pair

out, work, raw_before = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
m = Manifest.load(out)
files = sorted(out.glob("*_pair.fits"))
for f in files:  # every pair whole and readable
    p = read_pair(f)
    assert np.isfinite(p.halpha).all() and p.gauss.dtype == np.float32, f
listed = [s["pair"] for _, s in m.pairs()]
assert sorted(listed) == [f.name for f in files], "manifest and pairs on disk differ"
assert len(m.steps) == 30, f"{len(m.steps)} steps in the manifest"
assert not list(out.glob(".*.tmp")), "temporary files left"
raw_gong = list((out / "raw/gong").glob("*/*.fits.fz"))
raw_jsoc = list((out / "raw/jsoc").glob("*/*.magnetogram.fits"))
gong_served = int(re.search(r"after (\d+) downloads", (work / "gong.err").read_text())[1])
jsoc_served = int(re.search(r"'segment': (\d+)", (work / "jsoc.err").read_text())[1])
third = json.loads((work / "build3.out").read_text())
skipped = {s.get("reason") for s in m.steps.values() if s["status"] == "skipped"}
print(f"pairs {len(files)} of {len(m.steps)} steps; skipped reasons {sorted(skipped)}; "
      f"split {({k: len(m.data['split'][k]) for k in ('train', 'val', 'test', 'dropped')})}")
print(f"GONG frames served {gong_served} for {len(raw_gong)} in raw/ (re-downloads {gong_served - len(raw_gong)}); "
      f"JSOC segments served {jsoc_served} for {len(raw_jsoc)} in raw/ (re-downloads {jsoc_served - len(raw_jsoc)})")
print(f"completion run: {third['pairs_new']} new pairs, http {third['http']}; raw files before it {raw_before}")
assert gong_served - len(raw_gong) <= 2 and jsoc_served - len(raw_jsoc) <= 2, "more re-downloads than kills"
max_g = max(s["max_abs_gauss"] for _, s in m.pairs())
print(f"largest |B| kept in the pairs: {max_g:.0f} G (unclipped; the stand-in's source data are clipped at 200 G)")
EOF

echo "retrain (smoke) on the built folder..."
$PYTHON -m training.cli retrain --data-dir "$OUT" --config training/configs/smoke.toml --out-dir "$WORK/runs" \
  >"$WORK/retrain.out" 2>"$WORK/retrain.err" || { tail -20 "$WORK/retrain.err"; exit 1; }
ONNX=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["onnx"])' "$WORK/retrain.out")
VERSION=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$WORK/retrain.out")
FRAME=$($PYTHON - "$OUT" <<'EOF'
import sys
from training.dataset.manifest import Manifest

step = Manifest.load(sys.argv[1]).pairs()[-1][1]["halpha"]  # the newest built day's GONG frame
print(f"{sys.argv[1]}/raw/gong/{step['obs_time'][:10].replace('-', '')}/{step['file']}")
EOF
)
$PYTHON -m service.cli process "$FRAME" --model "$VERSION" --out "$WORK/products" >"$WORK/process.out" 2>"$WORK/process.err" \
  || { tail -20 "$WORK/process.err"; exit 1; }
$PYTHON - "$ONNX" "$VERSION" "$WORK/products" <<'EOF'
import sys
from pathlib import Path
from astropy.io import fits
from service.registry import Registry
from service.settings import load_settings
from training.export import read_metadata

onnx, version, products = sys.argv[1], sys.argv[2], Path(sys.argv[3])
meta = read_metadata(onnx)
row = Registry(load_settings()).get(version)
product = next(products.glob("*.fits"))
h = fits.getheader(product)  # provenance is in the primary header
print(f"registered {row.version} ({row.status}); synmag.solar_cycle {meta['synmag.solar_cycle']}, "
      f"output scaling {meta.get('synmag.output_scaling', 'linear 200 (default)')}")
print(f"synmag process {product.name}: MODCYCLE {h['MODCYCLE']} CYCLE {h['CYCLE']} POLSIGN {h['POLSIGN']}")
assert meta["synmag.solar_cycle"] == "25" and (int(h["MODCYCLE"]), int(h["CYCLE"]), int(h["POLSIGN"])) == (25, 25, 1)
print("drill passed")
EOF
