#!/usr/bin/env bash
# What it does: on a bare CUDA machine (H100/H200 with PyTorch and transformers but no
# pydantic and no network), installs docvlm from wheels carried in benchmarks/wheels/
# (git-ignored), then runs the stages named in $STAGES (default: engine) and writes JSON
# and logs under $OUT:
#   engine    the engine's GPU tests (float32 and bf16 against transformers, graph
#             re-capture and reuse, the compiled step within the recompile limit), the CPU
#             engine tests on this transformers, `docvlm info --check` on the tiny
#             checkpoint, benchmarks/profile_prefill.py (896 px: SigLIP, projector, Gemma
#             prefill apart), then benchmarks/generate.py (random 3B, bf16, 896 then
#             448 px, batch 1 and 32, plain generate against the engine, then 896 px
#             compiled); under 9 min;
#   finetune  tests/finetune/test_finetune_gpu.py (bf16 and QLoRA steps, merged output loads), then
#             benchmarks/finetune_gpu.py (random 3B, 448 and 896 px, LoRA and QLoRA: step
#             time and peak memory); under 7 min.
# Each stage has its own time limit; the benchmarks write their JSON as they go.
#
# Requirements: the wheels, fetched on a machine with network (Python 3.12, x86-64; about
# 55 MB, bitsandbytes being most of it):
#   bash benchmarks/gpu_check.sh download
# Run (from the repository root, on the GPU machine), one call per stage:
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#   OUT=/some/folder STAGES=finetune bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-benchmarks/wheels}
STAGES=${STAGES:-engine}
PYTHON=${PYTHON:-python3}

if [[ "${1:-}" == "download" ]]; then
    # docvlm's dependencies that the machine's image lacks (it has torch, transformers,
    # safetensors, huggingface_hub, pillow, lxml, typer, rich and pytest)
    exec "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        "pydantic>=2.7,<3" pydantic-core annotated-types typing-inspection \
        "pydantic-settings>=2.3,<3" python-dotenv "pypdfium2>=4.30,<6" "apted>=1.0.3" \
        "rapidfuzz>=3" "peft>=0.13" "accelerate>=1" "bitsandbytes>=0.45" "psutil>=5"
fi

OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SITE=${SITE:-/tmp/docvlm-site}
started=$SECONDS
stage() { echo "== $1 (t=$((SECONDS - started)) s)" | tee -a "$OUT/stages.log"; }

stage "install"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl 2>&1 | tee "$OUT/install.log" || exit 1
export PYTHONPATH="$SITE"
"$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade \
    --target "$SITE" . 2>&1 | tee -a "$OUT/install.log" || exit 1
"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import torch, transformers, docvlm
print("docvlm", docvlm.__file__)
print("torch", torch.__version__, "transformers", transformers.__version__)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
EOF

if [[ " $STAGES " == *" engine "* ]]; then
    stage "gpu tests"
    # fused kernels against the reference attention; the engine (FlexAttention, CUDA
    # graph, compiled step) against transformers in float32 and bf16
    timeout 240 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider \
        --junitxml="$OUT/gpu_tests.xml" tests/engines/test_attention.py tests/engines/test_engine.py \
        tests/engines/test_engine_cuda.py 2>&1 | tee "$OUT/gpu_tests.log"
    echo "gpu tests exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    stage "engine tests on this transformers (CPU)"
    timeout 120 "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$OUT/exact_tests.xml" \
        tests/engines/test_engine_exact.py 2>&1 | tee "$OUT/exact_tests.log"
    echo "exact tests exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    stage "docvlm info --check"
    "$PYTHON" -m docvlm.testing /tmp/docvlm-tiny >/dev/null &&
        timeout 60 "$PYTHON" -m docvlm info --check -c /tmp/docvlm-tiny --device cuda --json \
            2>&1 | tee "$OUT/info_check.json"
    echo "info --check exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    stage "prefill profile"
    timeout 100 "$PYTHON" benchmarks/profile_prefill.py --resolutions 896 --batches 1,8 \
        --json "$OUT/profile_prefill.json" 2>&1 | tee "$OUT/profile_prefill.log"
    echo "prefill profile exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"

    # 896 px first (the targets are there), then 448 px, then 896 px with the whole decode
    # step compiled
    for run in 896 448 896-compiled; do
        resolution=${run%%-*}
        extra=()
        [[ $run == *compiled ]] && extra=(--compile)
        left=$((540 - (SECONDS - started)))
        if [[ $run == 896 ]] && ((left > 170)); then
            left=170  # leaves 448 px and the compiled run about two minutes each
        fi
        if [[ $run == 448 ]] && ((left > 120)); then
            left=120
        fi
        if ((left < 60)); then
            stage "skipped $run: time is up"
            continue
        fi
        stage "benchmark $run (limit $left s)"
        timeout "$left" "$PYTHON" benchmarks/generate.py --resolutions "$resolution" \
            --batches 1,32 --new-tokens 128 "${extra[@]}" --json "$OUT/generate_$run.json" \
            2>&1 | tee "$OUT/generate_$run.log"
        echo "benchmark $run exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    done
fi

if [[ " $STAGES " == *" finetune "* ]]; then
    started=$SECONDS
    stage "finetune gpu tests"
    timeout 150 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider \
        --junitxml="$OUT/finetune_tests.xml" tests/finetune/test_finetune_gpu.py \
        2>&1 | tee "$OUT/finetune_tests.log"
    echo "finetune tests exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    for resolution in 448 896; do
        left=$((400 - (SECONDS - started)))
        if [[ $resolution == 448 ]] && ((left > 180)); then
            left=180  # leaves 896 px about three minutes
        fi
        if ((left < 60)); then
            stage "skipped finetune $resolution: time is up"
            continue
        fi
        stage "finetune benchmark $resolution (limit $left s)"
        timeout "$left" "$PYTHON" benchmarks/finetune_gpu.py --resolutions "$resolution" \
            --steps 8 --warmup 3 --json "$OUT/finetune_$resolution.json" \
            2>&1 | tee "$OUT/finetune_$resolution.log"
        echo "finetune benchmark $resolution exit: ${PIPESTATUS[0]}" | tee -a "$OUT/stages.log"
    done
fi
stage "done"
