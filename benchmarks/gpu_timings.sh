#!/bin/bash
# The GPU rows of benchmarks/README.md in one run: the peers side by side, then every config's step.
#
#   benchmarks/gpu_timings.sh OUTDIR [STEPS] [SECONDS]
#
# Needs one interpreter (PYTHON, default python3) with the project's dependencies, jax with CUDA and
# torch. Writes env.txt, peers.txt (compare_peers.py's table and JSON line) and epoch_time.txt (each
# config's table and JSON line) under OUTDIR; starts nothing new after SECONDS (default 480).
set -u
out=${1:?usage: gpu_timings.sh OUTDIR [STEPS] [SECONDS]}
steps=${2:-50}
deadline=$((SECONDS + ${3:-480}))
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
cd "$(dirname "$0")/.."

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $py -c 'import jax, flax, optax, orbax.checkpoint, torch; print("jax", jax.__version__,
jax.devices(), "flax", flax.__version__, "optax", optax.__version__, "torch", torch.__version__)'
} >"$out/env.txt" 2>&1

$py benchmarks/compare_peers.py --peers-python "${PEERS_PYTHON:-$(command -v "$py")}" \
  --rounds 2 --steps "$steps" --only project,project_bf16,torch,torch_compile,torch_bf16 \
  >"$out/peers.txt" 2>&1 || echo "FAILED: compare_peers" >>"$out/peers.txt"

time_config() {  # time_config NAME [epoch_time.py flags...]
  if ((SECONDS > deadline)); then echo "SKIPPED (out of time): $*" >>"$out/epoch_time.txt"; return; fi
  echo "=== $*" >>"$out/epoch_time.txt"
  $py benchmarks/epoch_time.py --config "lfw_siamese/configs/$1.py" --steps "$steps" "${@:2}" \
    >>"$out/epoch_time.txt" 2>&1 || echo "FAILED: $*" >>"$out/epoch_time.txt"
}
for config in default seed koch2015 seed_dense4096 unrestricted_bce tiny; do
  time_config $config
done
time_config seed --plain-xla
JAX_DEFAULT_MATMUL_PRECISION=highest time_config seed  # True float32 products, not TF32.
