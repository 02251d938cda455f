"""Times a config's real training step on synthetic data: step, epoch, throughput, memory.

  python benchmarks/epoch_time.py [--config PATH] [--steps N] [--batch B] [--set FIELD=VALUE ...]

Compiles the project's own train step (lfw_siamese.train_step.make_train_step, jitted as train.py
jits it) apart, runs warm-up steps, then times N steps, each blocked until its results are
ready, and reports the median. Achieved GFLOP/s uses XLA's cost analysis of the compiled step;
beside it, a matmul ceiling measured in the same run (float32, and bfloat16 inputs with float32
accumulation). Needs no dataset (and never imports tensorflow-datasets). Prints a table, then as
its last line one JSON object (benchmarks/compare_peers.py reads it).
"""

import argparse
import ast
import importlib.util
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lfw_siamese import host_memory  # pylint: disable=g-import-not-at-top

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SEED_CONFIG = os.path.join(_ROOT, 'lfw_siamese', 'configs', 'seed.py')
VIEW1_PAIRS = 2200  # pairsDevTrain.txt
VIEW2_TRAIN_PAIRS = 5400  # Nine folds of 600 pairs.
VIEW1_TRAIN_PEOPLE_WITH_PAIRS = 1184  # peopleDevTrain.txt: people with two or more images.


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default=_SEED_CONFIG, help='a config file (get_config())')
  parser.add_argument('--steps', type=int, default=5, help='timed steps')
  parser.add_argument('--warmup', type=int, default=2,
                      help='untimed steps after compiling (the first runs allocate memory)')
  parser.add_argument('--batch', type=int, default=0, help='pairs per step; 0: the config\'s')
  parser.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                      help='override a config field, e.g. --set model.compute_dtype=bfloat16')
  parser.add_argument('--plain-xla', action='store_true',
                      help="jit without ops.compiler_options() (XLA's default CPU libraries)")
  parser.add_argument('--no-ceiling', action='store_true', help='skip the matmul ceiling')
  return parser.parse_args(argv)


def load_config(path: str, overrides: list[str]):
  """get_config() of a config file, with FIELD=VALUE overrides (values as Python literals)."""
  if not os.path.isfile(path):
    sys.exit(f'epoch_time.py: error: --config {path}: no such file')
  spec = importlib.util.spec_from_file_location('benchmarked_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for override in overrides:
    field, _, text = override.partition('=')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = field.split('.')
    node = config
    try:
      for parent in parents:
        node = node[parent]
      node[leaf] = type(node[leaf])(value) if isinstance(node[leaf], (int, float)) and not \
          isinstance(node[leaf], bool) else value
    except (KeyError, AttributeError):
      sys.exit(f'epoch_time.py: error: --set {override}: no such config field')
  return config


def epoch_size(config, batch_size: int) -> tuple[int, int, str]:
  """(steps, examples, 'pairs' or 'images') of one training epoch on View 1 (or nine View 2
  folds, restricted), less the validation split."""
  if config.loss != 'bce':  # Identity batches: every training person with two or more images.
    people = round((1 - config.data.validation_fraction) * VIEW1_TRAIN_PEOPLE_WITH_PAIRS)
    per_batch = (batch_size - config.data.singles_per_batch) // config.data.images_per_person
    return people // per_batch, people // per_batch * batch_size, 'images'
  if config.data.paradigm == 'unrestricted':
    pairs = config.data.pairs_per_epoch or VIEW1_PAIRS
  else:
    pairs = VIEW1_PAIRS if config.data.protocol == 'view1' else VIEW2_TRAIN_PAIRS
    pairs -= round(config.data.validation_fraction * pairs)
  return pairs // batch_size, pairs, 'pairs'


def synthetic_batch(config, batch_size: int, image_shape, rng):
  """A batch as the input pipeline delivers it (uint8 images), of the shape the loss needs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if config.loss == 'bce':
    images = rng.integers(0, 256, (batch_size, 2, *image_shape), dtype=np.uint8)
    return {'images': images, 'labels': (np.arange(batch_size) % 2).astype(np.int32)}
  images = rng.integers(0, 256, (batch_size, *image_shape), dtype=np.uint8)
  return {'images': images, 'person_ids': (np.arange(batch_size) // 2).astype(np.int32)}


def matmul_ceiling(jax, jnp, compiler_options, bfloat16: bool) -> float:
  """GFLOP/s of a large square matmul (median of 5), float32 or bf16 in with f32 accumulation."""
  side = 2048 if jax.default_backend() == 'cpu' else 8192
  dtype = jnp.bfloat16 if bfloat16 else jnp.float32
  keys = jax.random.split(jax.random.key(0))
  a, b = (jax.random.normal(k, (side, side), dtype) for k in keys)
  matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32),
                   compiler_options=compiler_options)
  jax.block_until_ready(matmul(a, b))
  times = []
  for _ in range(5):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    times.append(time.perf_counter() - start)
  return 2 * side**3 / statistics.median(times) / 1e9


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_flops(lowered, compiled) -> float:
  """FLOPs of one call, from XLA's cost analysis (0 if unavailable).

  The larger of the counts before and after optimisation: on a GPU (jax 0.11.2, an H200) the
  compiled count left out the cuDNN and cuBLAS calls, 6.9 GFLOP for the seed step that counts
  305 on CPU.
  """
  counts = []
  for stage in (lowered, compiled):
    analysis = stage.cost_analysis()
    if isinstance(analysis, (list, tuple)):
      analysis = analysis[0] if analysis else {}
    counts.append(float((analysis or {}).get('flops', 0.0)))
  return max(counts)


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = load_config(args.config, args.set)
  allocator_tuned = host_memory.configure(config)  # Before JAX starts, as lfw_siamese.main does.

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lfw_siamese import sharding  # pylint: disable=g-import-not-at-top
  from lfw_siamese import train_step  # pylint: disable=g-import-not-at-top
  from lfw_siamese.data import images as images_lib  # pylint: disable=g-import-not-at-top
  from lfw_siamese.model import networks  # pylint: disable=g-import-not-at-top
  from lfw_siamese.model import ops  # pylint: disable=g-import-not-at-top

  batch_size = args.batch or config.batch_size
  config.batch_size = batch_size
  image_shape = tuple(images_lib.preprocessing(config.data).shape)
  epoch_steps, epoch_examples, unit = epoch_size(config, batch_size)
  compiler_options = None if args.plain_xla else ops.compiler_options()

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  model = networks.build(config.model)
  tx = train_step.make_optimizer(config, max(epoch_steps, 1))
  step = jax.jit(train_step.make_train_step(model, tx, config), donate_argnums=0,
                 in_shardings=(replicated, sharding.batch_sharding(mesh), replicated),
                 out_shardings=(replicated, replicated), compiler_options=compiler_options)
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  # CosFace's proxies: one per View 1 training person (peopleDevTrain lists 4,038).
  proxy_shape = (4038, config.model.dense_units) if config.cosface.weight else None
  state = train_step.create_state_jitted(model, tx, image_shape, init_key, replicated, proxy_shape)
  batch = sharding.global_batch(
      synthetic_batch(config, batch_size, image_shape, np.random.default_rng(0)), mesh)
  num_params = networks.count_params(state.params)

  started = time.perf_counter()
  lowered = step.lower(state, batch, train_key)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - started
  flops = step_flops(lowered, compiled)

  def run_step(state):
    state, metrics = compiled(state, batch, train_key)
    jax.block_until_ready((state, metrics))
    return state, metrics

  for _ in range(args.warmup):
    state, metrics = run_step(state)
  wall, cpu = [], []
  for _ in range(args.steps):
    started, cpu_started = time.perf_counter(), time.process_time()
    state, metrics = run_step(state)
    wall.append(time.perf_counter() - started)
    cpu.append(time.process_time() - cpu_started)
  loss = float(metrics['loss'])
  del state, metrics

  ceiling = ceiling_bf16 = 0.0
  if not args.no_ceiling:
    ceiling = matmul_ceiling(jax, jnp, compiler_options, bfloat16=False)
    ceiling_bf16 = matmul_ceiling(jax, jnp, compiler_options, bfloat16=True)
  step_s = statistics.median(wall)
  gflops_per_s = flops / step_s / 1e9
  mixed = config.model.compute_dtype == 'bfloat16'
  reference_ceiling = ceiling_bf16 if mixed else ceiling
  device = jax.devices()[0]
  memory = device.memory_stats() if device.platform != 'cpu' else None
  result = {
      'config': os.path.relpath(os.path.abspath(args.config), _ROOT),
      'overrides': args.set, 'batch': batch_size, 'image_shape': list(image_shape),
      'params': num_params, 'compute_dtype': config.model.compute_dtype,
      'step_ms': round(step_s * 1e3, 1),
      'steps_ms': [round(t * 1e3, 1) for t in wall],
      'step_cpu_ms': round(statistics.median(cpu) * 1e3, 1),
      'epoch_steps': epoch_steps, 'epoch_examples': epoch_examples, 'unit': unit,
      'epoch_s': round(step_s * epoch_steps, 2),
      'examples_per_s': round(batch_size / step_s, 2),
      'gflop_per_step': round(flops / 1e9, 2),
      'gflops_per_s': round(gflops_per_s, 1),
      'ceiling_gflops_per_s': round(ceiling, 1),
      'ceiling_bf16_gflops_per_s': round(ceiling_bf16, 1),
      'fraction_of_ceiling': round(gflops_per_s / reference_ceiling, 3) if reference_ceiling
                             else None,
      'compile_s': round(compile_s, 2),
      'peak_rss_mb': round(peak_rss_mb()),
      'device_peak_mb': round(memory['peak_bytes_in_use'] / 2**20)
                        if memory and 'peak_bytes_in_use' in memory else None,
      'devices': jax.device_count(), 'device_kind': device.device_kind,
      'platform': device.platform, 'cpu_count': os.cpu_count(),
      'compiler_options': compiler_options or {}, 'allocator_tuned': allocator_tuned,
      'final_loss': round(loss, 4), 'jax': jax.__version__,
  }
  print_table(result)
  print(json.dumps(result), flush=True)
  return result


def print_table(r: dict) -> None:
  rows = [
      ('config', f"{r['config']} {' '.join(r['overrides'])}".strip()),
      ('devices', f"{r['devices']} x {r['device_kind']} ({r['platform']}, {r['cpu_count']} CPUs)"),
      ('params', f"{r['params'] / 1e6:.1f} M, compute {r['compute_dtype']}"),
      ('batch', f"{r['batch']} {r['unit']} of {'x'.join(map(str, r['image_shape']))}"),
      ('compile', f"{r['compile_s']:.1f} s"),
      ('step (median)', f"{r['step_ms']:.0f} ms wall, {r['step_cpu_ms']:.0f} ms CPU; all: "
                        f"{', '.join(f'{t:.0f}' for t in r['steps_ms'])}"),
      ('epoch', f"{r['epoch_s']:.1f} s ({r['epoch_steps']} steps, {r['epoch_examples']} "
                f"{r['unit']})"),
      ('throughput', f"{r['examples_per_s']:.1f} {r['unit']}/s"),
      ('compute', f"{r['gflop_per_step']:.1f} GFLOP/step, {r['gflops_per_s']:.1f} GFLOP/s"),
      ('matmul ceiling', f"{r['ceiling_gflops_per_s']:.0f} GFLOP/s f32, "
                         f"{r['ceiling_bf16_gflops_per_s']:.0f} GFLOP/s bf16 in / f32 acc"),
      ('of ceiling', f"{r['fraction_of_ceiling']:.0%}" if r['fraction_of_ceiling'] else 'n/a'),
      ('peak RSS', f"{r['peak_rss_mb']} MiB" + (f", device peak {r['device_peak_mb']} MiB"
                                               if r['device_peak_mb'] else '')),
  ]
  width = max(len(name) for name, _ in rows)
  for name, value in rows:
    print(f'{name:<{width}}  {value}')


if __name__ == '__main__':
  main()
