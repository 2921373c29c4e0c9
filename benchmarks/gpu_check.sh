#!/usr/bin/env bash
# Everything a GPU run of cyto needs checked, in one prepared script (about 6 minutes on
# one H100/H200; budget: 8).
#
#   benchmarks/gpu_check.sh                  # on the GPU host, from anywhere
#   benchmarks/gpu_check.sh --dry-run [DIR]  # anywhere, CPU, ~1 minute (CI runs this)
#   benchmarks/gpu_check.sh --prepare-wheels # here, before going to a host with no index
#
# Stages (each timed; a failed stage is reported and the others still run):
#   1. environment   torch/CUDA/Triton versions; cyto imports with only numpy, scipy, torch,
#                    triton, h5py, scikit-image, scikit-learn, tifffile (+ tqdm, pytest)
#   2. tests         the CUDA tests (-m gpu), the Triton quantizer tests, the no-sync and
#                    no-graph-break tests of the training step
#   3. bench_quantize  torch vs Triton nearest-code search on CUDA
#   4. bench_train     training loop and embedding from an HDF5 store, paper preset, CUDA
#   5. bench_gpu       paper preset, bf16 + channels-last, eager and torch.compile, against
#                      benchmarks/gpu_targets.json (>= 5,000 training and >= 20,000
#                      embedded images/s)
#   6. end to end    cyto synth -> preprocess -> train --preset paper --compile -> embed
#
# Results: benchmarks/results/gpu*.{json,md}, quantize_gpu.*, train_gpu.*, gpu_check.md
# (the stage table) and gpu_check.log; a dry run writes them under DIR (default: a
# temporary folder) and never into the repository. Exit status: 0 when every stage passed.
#
# A host without a package index needs nothing beyond the packages named in stage 1.
# tqdm, pytest and pytest-timeout are pure Python; where they are missing, carry them as wheels:
# run `benchmarks/gpu_check.sh --prepare-wheels` here (writes .whl/, git-ignored) and
# carry .whl with the repository; the script installs them into a temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare-wheels" ]; then
  exec "$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl tqdm pytest pytest-timeout pluggy iniconfig packaging
fi
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ "$DRY" = 1 ]; then
  RESULTS=${1:-$WORK/results}
else
  RESULTS=${1:-benchmarks/results}
fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import tqdm, pytest, pytest_timeout" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi

SUFFIX=""
[ "$DRY" = 1 ] && SUFFIX="_dry_run"
LOG="$RESULTS/gpu_check$SUFFIX.log"
TABLE="$RESULTS/gpu_check$SUFFIX.md"
: >"$LOG"
FAILED=0
ROWS=""

stage() { # stage NAME COMMAND...: run, time and record one stage
  local name=$1 start status
  shift
  echo "== $name: $*" | tee -a "$LOG"
  start=$(date +%s)
  if "$@" >>"$LOG" 2>&1; then status=ok; else status="FAILED (exit $?)"; FAILED=1; fi
  ROWS="$ROWS| $name | $status | $(($(date +%s) - start)) s |"$'\n'
  echo "   $status" | tee -a "$LOG"
}

environment() {
  command -v nvidia-smi >/dev/null && nvidia-smi
  "$PY" - <<'EOF'
import importlib, sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("devices", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
for name in ("numpy", "scipy", "h5py", "skimage", "sklearn", "tifffile", "triton", "tqdm", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError as err:
        print(name, "MISSING", err)
import cyto.nn, cyto.preprocess, cyto.data  # noqa: E401,F401  (the stages' imports)
from cyto.nn.quantize._module import resolve_backend
print("quantizer backend:", resolve_backend("auto"))
EOF
}

gpu_tests() {
  # only the plugins these tests need (others installed on a host may import anything)
  local collect=() opts=(-q -p no:cacheprovider -p pytest_timeout)
  [ "$DRY" = 1 ] && collect=(--collect-only)
  export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
  "$PY" -m pytest "${opts[@]}" "${collect[@]}" \
    tests/nn/test_quantize_triton.py tests/nn/test_step_capture.py &&
    "$PY" -m pytest "${opts[@]}" "${collect[@]}" -m gpu \
      tests/nn/test_train.py tests/nn/test_quantize.py tests/nn/test_model.py tests/nn/test_embed.py
}

end_to_end() {
  local preset=paper synth=(--proteins 60 --fields 4 --scale 2) compile=(--compile) device=cuda
  if [ "$DRY" = 1 ]; then
    preset=small synth=(--families er,mitochondria --proteins 8 --fields 1) compile=() device=cpu
  fi
  "$PY" -m cyto synth -o "$WORK/atlas" "${synth[@]}" -j "$(nproc)" -q &&
    "$PY" -m cyto preprocess "$WORK/atlas/manifest.csv" -o "$WORK/crops.h5" -j "$(nproc)" -q \
      $("$PY" -c "import json, sys; h = json.load(open(sys.argv[1]))['preprocess_hint']; print(
        f\"--downsample {h['downsample_factor']} --crop-size {h['crop_size']}\",
        f\"--nucleus-diameter {h['nucleus_diameter']}\")" "$WORK/atlas/synth.json") &&
    "$PY" -m cyto train "$WORK/crops.h5" -o "$WORK/run" --preset $preset --max-epochs 1 \
      --device $device "${compile[@]}" -q &&
    "$PY" -m cyto embed "$WORK/run" "$WORK/crops.h5" -o "$WORK/emb.h5" --device $device \
      --allow-degenerate -q &&
    "$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1]); print('embedded', f['global'].shape)" \
      "$WORK/emb.h5"
}

stage environment environment
stage tests gpu_tests
if [ "$DRY" = 1 ]; then
  stage bench_quantize "$PY" benchmarks/bench_quantize.py --help
  stage bench_train "$PY" benchmarks/bench_train.py --presets tiny --devices cpu --steps 1 \
    --repeats 1 --embed-crops 32 --batch-size 8 --workers 0 --out "$RESULTS/train$SUFFIX.json"
  stage bench_gpu "$PY" benchmarks/bench_gpu.py --dry-run --out "$RESULTS/gpu$SUFFIX"
else
  stage bench_quantize "$PY" benchmarks/bench_quantize.py --rounds 5 --dense-rounds 1 \
    --no-memory --out "$RESULTS/quantize_gpu"
  stage bench_train "$PY" benchmarks/bench_train.py --presets paper --devices cuda \
    --batch-size 256 --steps 20 --workers 8 --embed-crops 8192 --out "$RESULTS/train_gpu.json"
  stage bench_gpu "$PY" benchmarks/bench_gpu.py --out "$RESULTS/gpu"
fi
stage end_to_end end_to_end

{
  echo "# gpu_check.sh${SUFFIX:+ (dry run)}"
  echo
  echo "$(date -u +%FT%TZ) on $(hostname); log: $(basename "$LOG")"
  echo
  echo "| stage | status | wall |"
  echo "|---|---|---|"
  printf '%s' "$ROWS"
} >"$TABLE"
cat "$TABLE"
exit $FAILED
