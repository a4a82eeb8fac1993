#!/usr/bin/env bash
# The README's GPU figures in one call of at most ten minutes: the bench of the paper configuration, then five
# trainings on the built-in cars side by side (the paper's recipe on its crops, then whole images under the paper's
# recipe, the fallback and the tiny preset's recipe scaled to the wide discriminator, then the crops' rays spread
# over the whole image under hypernerfgan-lite's recipe) for a fixed budget of images or of minutes, whichever ends
# first, with their quality curves, then a sample sheet of each. Everything comes back as a few files of at most
# 15 MB, ready to be scored where the Inception weights are (a GPU machine may have neither them nor a package index),
# written as each stage ends (the bench, the runs, the sheets), so that a call cut short brings back the stages it
# finished.
#
# On the GPU machine, in the project's root, with the project installed (on a machine without a package index, bring
# wheels and an installer as `.gpu/whl` and `.gpu/install.sh`: the script sources it first):
#
#     OUT=gpu_check bash tools/gpu_check.sh
#
# Then here, where the Inception weights are:
#
#     bash tools/gpu_check.sh --unpack FILES gpu_check   # joins and unpacks what came back into gpu_check/
#     hypernerfgan score-curve --skip-missing gpu_check/runs/*/*/*   # FID and KID of the curve points' kept samples
#     hypernerfgan plot gpu_check/runs/*/*/* --output gpu_check/curves.png
#
# The stages fit LIMIT seconds (the call's limit, less a margin): the trainings are cut short, and the sample
# sheets' time is what is left. While the trainings run, their curves so far reach $OUT every minute.
#
# The knobs below are environment variables. A dry run on the CPU:
#     OUT=/tmp/dry METHOD=hypernerfgan-tiny WHOLE_IMAGE=32 HALF_BASE=512 ITERATIONS=20 CURVE_IMAGES=40 \
#         CURVE_SAMPLES=16 TRAIN_SECONDS=200 BENCH_SECONDS=0 bash tools/gpu_check.sh
set -uo pipefail

if [ "${1:-}" = "--unpack" ]; then
    # What came back may lie in a read-only folder, so it is unpacked into another (or into itself).
    source=${2:?usage: tools/gpu_check.sh --unpack FOLDER [DESTINATION]}
    folder=${3:-$source}
    mkdir -p "$folder" && tar -xzf "$source/summary.tgz" -C "$folder" || exit 1
    if ls "$source"/runs.tar.* >/dev/null 2>&1; then
        mkdir -p "$folder/runs" && cat "$source"/runs.tar.* | tar -x -C "$folder/runs" || exit 1
    else
        echo "No runs.tar.* in $source: the call ended before the trainings did; the curves so far are in" \
            "$folder/summary/curves (see summary/gpu_check.log)."
    fi
    echo "Unpacked into $folder: $(cd "$folder" && ls -d runs summary/* 2>/dev/null | tr '\n' ' ')"
    exit 0
fi

OUT=${OUT:?set OUT to the folder that receives the results}
METHOD=${METHOD:-hypernerfgan}          # the paper configuration
DATA=${DATA:-cars}                      # a built-in set, rendered once into the cache
ITERATIONS=${ITERATIONS:-2500}          # 10,000 images at the paper's batch of 4: the fixed budget of the study
TRAIN_SECONDS=${TRAIN_SECONDS:-350}     # each training is stopped by SIGINT (a checkpoint is saved) after this long
BENCH_SECONDS=${BENCH_SECONDS:-150}     # 0: no bench (12 rows, the most wanted first; each also writes its profile)
SHEET_SECONDS=${SHEET_SECONDS:-80}      # loading a run and rendering its sheet
CURVE_IMAGES=${CURVE_IMAGES:-2500}      # a quality-curve point every this many images
CURVE_SAMPLES=${CURVE_SAMPLES:-400}     # EMA samples per point, kept as PNGs (about 3.4 MB per 400 at 128 px)
THREADS=${THREADS:-3}                   # CPU threads per training (the machine has 16 cores; five trainings)
LIMIT=${LIMIT:-570}                     # seconds the whole check may take (a call's limit is 600; tar and copies last)
WHOLE_IMAGE=${WHOLE_IMAGE:-128}          # the method's image side: the whole-images run's patch (32 for -tiny)
HALF_BASE=${HALF_BASE:-16384}          # half the method's channel_base: the fourth and fifth runs' (512 for -tiny)
SCALED_D_LR=${SCALED_D_LR:-0.005}       # the fourth and fifth runs' discriminator rate: the tiny 0.01 at 4x the width
# The runs: NAME=ns-train options beside the method's preset, comma-separated. On the tiny preset the faster recipe
# (Adam at 0.01, the encoding's octaves faded in over 5,000 images) halves FID on whole images and changes nothing on
# crops of a quarter of the image, the paper's 64 x 64 of 128 x 128 (docs/ablations.md, "Patches smaller than the
# image"), so the paper's recipe on its crops, today's default, is compared with whole 128 x 128 images under the
# paper's recipe, the fallback (the generator at 0.01, the wide discriminator at the paper's 0.0025, where it stays
# tame) and the tiny preset's recipe scaled to the wide discriminator (the generator at 0.01, the discriminator at
# 0.005 with its channel_base halved, which cost the tiny preset nothing per image and brings whole images back to
# about the crops' arithmetic). The discriminator's rate is halved because its 512 channels at 0.01 blew its logits up
# in four runs of four on the CPU, where at 0.005 they stayed tame on two seeds (docs/ablations.md, "The wide
# discriminator's rate"); at the fixed budget, on the tiny preset with a discriminator four times as wide, 0.005
# learned as fast per image as the tiny preset and 0.01 blew up on both seeds ("A wide discriminator's rate at the
# fixed budget"). On the H200 whole images may cost far less than four times the rays' time, which these runs
# and the bench's whole-images rows measure. The fifth run keeps the crops' 64 x 64 rays but spreads them over the
# whole image: every other pixel from a random first one per patch, its real pixels the same photo pixels
# (whole-image patches at a random phase). On the tiny preset's crops that took FID from 133 to 77 (3 seeds, better
# on each) for about 0.7 times the crops' minutes (docs/ablations.md, "Whole-image patches at a random phase"). It
# trains under hypernerfgan-lite's recipe (the generator at 0.01, the discriminator at 0.005 with its channel_base
# halved, the octaves faded in over 5,000 images): on the paper's networks with 32 x 32 rays over the whole image,
# every fourth pixel, that recipe made car bodies at 10,000 images where the paper's recipe on crops made specks (FID
# 209 against 312 on the CPU, docs/ablations.md, "The paper's networks at 10,000 images"), its full-width
# discriminator tame at 0.005; halving its channel_base there took 0.54 of the iteration's arithmetic at the same
# FID (177 on two seeds' means, "Half the discriminator's channels at 32 pixels").
WHOLE=--pipeline.datamanager.patch-size=$WHOLE_IMAGE
WHOLE_IMAGE_PATCHES=--pipeline.datamanager.whole-image-patches=True
WHOLE_IMAGE_PATCHES=$WHOLE_IMAGE_PATCHES,--pipeline.datamanager.whole-image-patch-phase=random
FASTER=--optimizers.generator.optimizer.lr=0.01,--pipeline.model.frequency-annealing-images=5000
LITE_RATES=$FASTER,--optimizers.discriminator.optimizer.lr=$SCALED_D_LR  # the tiny recipe at the wide D's rate
SCALED_RECIPE=$LITE_RATES,--pipeline.discriminator.channel-base=$HALF_BASE  # hypernerfgan-lite's
RUNS=${RUNS:-"paper-recipe= \
whole-images=$WHOLE \
whole-images-fallback=$WHOLE,$FASTER \
whole-images-scaled-recipe=$WHOLE,$SCALED_RECIPE \
whole-image-patches-lite-recipe=$WHOLE_IMAGE_PATCHES,$SCALED_RECIPE"}

start=$(date +%s)
mkdir -p "$OUT"
work=$(mktemp -d)
summary=$work/summary
mkdir -p "$summary" "$work/runs"
elapsed() { echo $(($(date +%s) - start)); }
log() { echo "[gpu_check +$(elapsed) s] $*" | tee -a "$summary/gpu_check.log"; }
# The summary goes to $OUT whenever a stage ends, as one file replaced whole, so that a call cut short (a device
# session's time can end before the call's limit) still brings back every stage that finished.
save_summary() {
    tar -C "$work" -czf "$work/summary.tgz" summary && cp "$work/summary.tgz" "$OUT/summary.tgz.new" \
        && mv -f "$OUT/summary.tgz.new" "$OUT/summary.tgz"
}

# The tools are run as modules, not by their console scripts, and with -P (Python 3.11+), which keeps the working
# directory off the import path. An install into a --target folder may lack console scripts (two pip installs into
# one --target keep only the second one's bin/: .gpu/install.sh's nerfstudio, then the project, leaves no ns-train),
# and the project's source folder, the working directory, holds the package without its dataset presets (setup.py
# maps them in from configs/ at install time), so only the installed package is complete.
ns_train=(python3 -P -m nerfstudio.scripts.train)
hypernerfgan=(python3 -P -m hypernerfgan_ns.scripts.cli)
installed() { python3 -P -c "import hypernerfgan_ns.data.dataset_presets as p; p.preset_files()" >/dev/null 2>&1; }
if [ -f .gpu/install.sh ] && ! installed; then
    # shellcheck disable=SC1091
    source .gpu/install.sh .gpu/whl > "$summary/install.log" 2>&1 || { cat "$summary/install.log"; exit 1; }
fi
export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-200}  # rich tables in the logs at full width
installed || { echo "hypernerfgan_ns is not installed: pip install -e .[dev] first"; exit 1; }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU") \
    > "$summary/gpu.txt"
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)" >> "$summary/gpu.txt"
log "GPU: $(tr '\n' ' ' < "$summary/gpu.txt")"

# The training images, rendered once before the clocks start (the trainings would otherwise wait on each other's
# rendering), in parallel with the bench, which uses its own small set.
python3 -P - "$METHOD" "$DATA" > "$summary/data.log" 2>&1 <<'EOF' &
import sys

from hypernerfgan_ns.method_configs import method_config

method, data = sys.argv[1], sys.argv[2]
dataparser = method_config(method).pipeline.datamanager.dataparser
dataparser.data = data
print("training images in", dataparser.setup().resolve_source())
EOF
data_pid=$!

if [ "$BENCH_SECONDS" -gt 0 ]; then
    log "bench (at most $BENCH_SECONDS s)"
    timeout -s INT -k 10 "$BENCH_SECONDS" "${hypernerfgan[@]}" bench --methods "$METHOD" \
        --variants preset discriminator-channels-last pytorch-double-backward compiled-target-field \
        compiled-discriminator whole-images whole-images-discriminator-base-x0.5 whole-image-patches eval-fp32 \
        query-every-sample shared-fakes importance-half \
        --json "$summary/bench.json" --profile-dir "$summary/profiles" \
        > "$summary/bench.log" 2>&1 || log "bench stopped early (exit $?): see bench.log"
fi
wait "$data_pid" || { log "the training images could not be prepared:"; cat "$summary/data.log"; }
log "$(tail -n 1 "$summary/data.log")"
save_summary

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$summary/nvidia_smi.csv" &
    smi_pid=$!
fi

# The trainings get what is left once the sheets and the packing (about 40 s) are set aside.
train_seconds=$((LIMIT - $(elapsed) - SHEET_SECONDS - 40))
[ "$train_seconds" -lt 30 ] && train_seconds=30  # the least that brings back a curve
if [ "$train_seconds" -lt "$TRAIN_SECONDS" ]; then
    log "trainings cut to $train_seconds s to end within $LIMIT s"
else
    train_seconds=$TRAIN_SECONDS
fi
names=()
pids=()
for run in $RUNS; do
    name=${run%%=*}
    options=${run#*=}
    names+=("$name")
    log "training $name: ns-train $METHOD ${options//,/ } (stopped after $train_seconds s)"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$THREADS timeout -s INT -k 30 "$train_seconds" "${ns_train[@]}" "$METHOD" --data "$DATA" \
        --max-num-iterations "$ITERATIONS" --vis tensorboard --output-dir "$work/runs" --experiment-name "$name" \
        --timestamp gpu --quality-curve.interval-images "$CURVE_IMAGES" \
        --quality-curve.num-generated "$CURVE_SAMPLES" --quality-curve.keep-samples always ${options//,/ } \
        > "$summary/train_$name.log" 2>&1 &
    pids+=($!)
done
run_folder() { dirname "$(ls -d "$work/runs/$1"/*/gpu/config.yml 2>/dev/null | head -n 1)"; }
# The curves so far reach $OUT every minute while the trainings run: a call cut short keeps them.
mkdir -p "$summary/curves"
while kill -0 "${pids[@]}" 2>/dev/null; do
    for _ in $(seq 60); do kill -0 "${pids[@]}" 2>/dev/null && sleep 1; done
    for name in "${names[@]}"; do
        cp "$(run_folder "$name")/metrics.jsonl" "$summary/curves/$name.jsonl" 2>/dev/null
    done
    save_summary
done
for index in "${!pids[@]}"; do
    wait "${pids[$index]}"
    status=$?
    case $status in
        0) how="trained its $ITERATIONS iterations" ;;
        124) how="stopped after its time by SIGINT, with a checkpoint" ;;  # timeout's status when it sent the signal
        137) how="killed 30 s after its SIGINT: no checkpoint of the stop" ;;
        3) how="stopped itself ($(grep -o -m 1 'collapsed to empty scenes\|Training diverged' \
            "$summary/train_${names[$index]}.log" || echo "diverged or collapsed")): see train_${names[$index]}.log" ;;
        *) how="failed: see train_${names[$index]}.log" ;;
    esac
    rewinds=$(grep -c "Rewinding to" "$summary/train_${names[$index]}.log" 2>/dev/null)
    [ "${rewinds:-0}" -gt 0 ] && how="$how; its generator collapsed and was rewound $rewinds time(s) (grep Rewinding)"
    log "training ${names[$index]} ended with exit status $status: $how"
done
[ -n "${smi_pid:-}" ] && kill "$smi_pid" 2>/dev/null
log "trainings ended"

for name in "${names[@]}"; do
    tail -n 2 "$(run_folder "$name")/metrics.jsonl" 2>/dev/null | sed "s/^/[$name] /" | tee -a "$summary/gpu_check.log"
done

# Runs without their checkpoints (hundreds of MB); each curve point's samples are in its curve_samples/.
# A device call brings back at most 64 MiB: past 56 MB, the untrained generators' points (images seen 0) go first.
tar -C "$work/runs" --exclude nerfstudio_models -cf "$work/runs.tar" .
if [ "$(stat -c %s "$work/runs.tar")" -gt 56000000 ]; then
    log "runs over 56 MB: leaving out the samples of the points at 0 images (their SWD stays in metrics.jsonl;" \
        "score-curve --skip-missing scores the others)"
    tar -C "$work/runs" --exclude nerfstudio_models --exclude images_000000000.zip -cf "$work/runs.tar" .
fi
split -b 15M "$work/runs.tar" "$OUT/runs.tar."
log "runs: $(du -h "$work/runs.tar" | cut -f1) in $(ls "$OUT"/runs.tar.* | wc -l) pieces" \
    "(a device call brings back 8 files of 16 MiB, 64 MiB in all: fewer runs or CURVE_SAMPLES if this is more)"
save_summary

sheet_seconds=$((LIMIT - $(elapsed) - 10))
[ "$sheet_seconds" -gt "$SHEET_SECONDS" ] && sheet_seconds=$SHEET_SECONDS
[ "$sheet_seconds" -lt 5 ] && sheet_seconds=5  # timeout 0 would mean no limit at all
for name in "${names[@]}"; do
    timeout -k 5 "$sheet_seconds" "${hypernerfgan[@]}" samples --load-config "$(run_folder "$name")/config.yml" \
        --output "$summary/samples_$name.png" --num-seeds 6 --views 4 > "$summary/samples_$name.log" 2>&1 &
done
for _ in "${names[@]}"; do wait -n; save_summary; done  # each sheet reaches $OUT as it is drawn
log "sample sheets: $(cd "$summary" && ls samples_*.png 2>/dev/null | tr '\n' ' '); total $(elapsed) s"
save_summary
rm -rf "$work"
