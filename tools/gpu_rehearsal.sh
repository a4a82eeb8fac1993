#!/usr/bin/env bash
# tools/gpu_check.sh rehearsed on the CPU in the GPU machine's environment, before a GPU session is spent on it.
# A GPU session is one short call of at most ten minutes, so what would stop the check there has to be found here:
# a console script the offline install leaves out, a module imported from the source folder instead of the
# installed package, an API that differs in torch 2.11 or numpy 2. This builds that machine's environment in a
# virtual environment (its Python, torch and numpy, the packages it has preinstalled), installs nerfstudio and the
# project from the wheels in .gpu/whl into a --target folder with .gpu/install.sh, as there, runs the check on the
# tiny preset, unpacks its files as they would be unpacked here, and says whether every run trained, scored its
# curve and drew its sample sheet.
#
# From the project's root, with a package index (the GPU machine has none):
#
#     mkdir -p .gpu && cp ../shared/gpu/*.sh .gpu/ && .gpu/wheels.sh .gpu/whl    # the wheels, as for the GPU
#     bash tools/gpu_rehearsal.sh          # about 5 minutes the first time (torch 2.11 is 5 GB), 3 after
#
# The knobs below are environment variables. .gpu/install.sh installs into /tmp/site, which this replaces.
set -euo pipefail

# The GPU machine's Python (under pyenv, give its path: PYTHON=~/.pyenv/versions/3.12.1/bin/python3.12).
PYTHON=${PYTHON:-python3.12}
TORCH=${TORCH:-2.11.0}                      # its torch (a CUDA build; on this machine it runs on the CPU)
TORCHVISION=${TORCHVISION:-0.26.0}          # the torchvision built for that torch
NUMPY=${NUMPY:-2.4.6}                       # it has 2.5; the newest release for Python 3.12 on the index here
VENV=${VENV:-/tmp/hypernerfgan-gpu-rehearsal}
OUT=${OUT:-/tmp/hypernerfgan-gpu-rehearsal-out}
UNPACKED=${UNPACKED:-$OUT.unpacked}         # unpacked apart, as from the read-only folder a device call returns
# The check's knobs, on the tiny preset: more iterations than fit and a bench cut short, so that the trainings and
# the bench are stopped by SIGINT as on the GPU, and the curves so far are copied out while the trainings run.
ITERATIONS=${ITERATIONS:-100000}
TRAIN_SECONDS=${TRAIN_SECONDS:-100}
BENCH_SECONDS=${BENCH_SECONDS:-40}
LIMIT=${LIMIT:-900}                         # the CPU is slower than the GPU machine; LIMIT=... tests the cuts
# What the GPU machine has preinstalled (../shared/gpu/README.md) and nerfstudio imports on the training, bench and
# render paths, which the wheels in .gpu/whl therefore do not bring.
PREINSTALLED="numpy==$NUMPY scipy scikit-image opencv-python-headless tensorboard torchmetrics jaxtyping rich \
matplotlib imageio h5py pyyaml requests tqdm packaging psutil"

[ -f .gpu/install.sh ] && [ -d .gpu/whl ] || {
    echo "No .gpu/install.sh or .gpu/whl in $(pwd): make them as for the GPU machine (see the top of $0)."
    exit 1
}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q "torch==$TORCH" "torchvision==$TORCHVISION" "setuptools<82" $PREINSTALLED
# shellcheck disable=SC1091
source "$VENV/bin/activate"
rm -rf /tmp/site
# shellcheck disable=SC1091
source .gpu/install.sh .gpu/whl || true     # its last line names the GPU, which fails without one
python3 -P -c "import hypernerfgan_ns.data.dataset_presets as p; p.preset_files()" || {
    echo "The project did not install from .gpu/whl into /tmp/site: see the errors above."
    exit 1
}

# A fresh cache, as on the GPU machine: the built-in images are rendered again, and there are no Inception weights,
# so the curves hold SWD only and keep their samples.
rm -rf "$OUT" "$OUT.cache" "$UNPACKED"
HYPERNERFGAN_CACHE=$OUT.cache OUT=$OUT METHOD=hypernerfgan-tiny WHOLE_IMAGE=32 HALF_BASE=512 ITERATIONS=$ITERATIONS \
    CURVE_IMAGES=40 CURVE_SAMPLES=16 TRAIN_SECONDS=$TRAIN_SECONDS BENCH_SECONDS=$BENCH_SECONDS LIMIT=$LIMIT THREADS=1 \
    bash tools/gpu_check.sh
bash tools/gpu_check.sh --unpack "$OUT" "$UNPACKED"
OUT=$UNPACKED

failed=0
[ -n "$(ls "$OUT/runs" 2>/dev/null)" ] || { echo "FAILED: no runs came back"; failed=1; }
for run in "$OUT"/runs/*/; do
    name=$(basename "$run")
    points=$(cat "$run"*/gpu/metrics.jsonl 2>/dev/null | wc -l || true)
    copied=$(cat "$OUT/summary/curves/$name.jsonl" 2>/dev/null | wc -l || true)
    if [ "$points" -lt 2 ] || [ "$copied" -lt 1 ] || [ ! -s "$OUT/summary/samples_$name.png" ]; then
        echo "FAILED $name: $points curve points ($copied copied out while training), sheet samples_$name.png;" \
            "see $OUT/summary/*$name.log"
        failed=1
    else
        echo "ok $name: $points curve points ($copied copied out while training) and a sample sheet"
    fi
done
python3 - "$OUT/summary/bench.json" <<'EOF_BENCH' || failed=1
import json, os, sys

rows = json.load(open(sys.argv[1]))["rows"]
print(f"bench: {len(rows)} rows,", ", ".join(f"{row['variant']} {row['status']}" for row in rows))
# Each row measured also brought its profiled iteration back (its paths are the GPU machine's, the names are kept).
profiles = os.path.join(os.path.dirname(sys.argv[1]), "profiles")
missing = [name for row in rows for name in map(os.path.basename, row["profile_files"])
           if not os.path.isfile(os.path.join(profiles, name))]
files = sum(len(row["profile_files"]) for row in rows)
print(f"bench profiles: {files} files", f"(missing {missing})" if missing else "")
sys.exit(0 if rows and rows[0]["status"] == "done" and rows[0]["profile_files"] and not missing else 1)
EOF_BENCH
if [ "$failed" = 0 ]; then
    echo "The GPU check ran through in $(python3 -c 'import sys, torch, numpy
print("Python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__)')."
fi
exit "$failed"
