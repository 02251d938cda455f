"""What the peer benchmarks share: the reference model's shape, the command line and the report."""

import argparse
import json
import resource
import statistics
import sys
import time

# The seed config (lfw_siamese/configs/seed.py), restated so the peers need no project import.
REFERENCE = dict(image_size=250, channels=1, conv_filters=(64, 64), conv_kernel=3, conv_stride=2,
                 dropout=0.5, dense_units=1024, batch=64, learning_rate=6e-5, l2_weight=0.01)
VIEW1_TRAIN_PAIRS = 2145  # pairsDevTrain minus the 2.5% validation split.


def parse_args(description: str, add_flags=None) -> argparse.Namespace:
  """The flags every peer takes (the model's size, how many steps to time), and add_flags's."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument('--steps', type=int, default=5, help='timed steps (after one warm-up step)')
  parser.add_argument('--batch', type=int, default=REFERENCE['batch'])
  parser.add_argument('--image-size', type=int, default=REFERENCE['image_size'])
  parser.add_argument('--dense-units', type=int, default=REFERENCE['dense_units'])
  parser.add_argument('--warmup', type=int, default=1, help='untimed steps after the first')
  if add_flags:
    add_flags(parser)
  return parser.parse_args()


def time_steps(run_step, steps: int, warmup: int) -> tuple[float, list[float], list[float]]:
  """Runs the first step (tracing/compiling) and `warmup` more, then times `steps` steps.

  Returns the first step's seconds, and each timed step's wall and process-CPU seconds (CPU time
  is what a step costs when other processes share the cores).
  """
  start = time.perf_counter()
  run_step()
  first_s = time.perf_counter() - start
  for _ in range(warmup):
    run_step()
  step_s, cpu_s = [], []
  for _ in range(steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    run_step()
    step_s.append(time.perf_counter() - start)
    cpu_s.append(time.process_time() - cpu_start)
  return first_s, step_s, cpu_s


def peak_rss_mb() -> float:
  """This process's peak resident memory in MiB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(impl: str, args: argparse.Namespace, first_s: float, step_s: list[float],
           cpu_s: list[float], num_params: int, **extra) -> None:
  """Prints a one-line summary, then the JSON line that compare_peers.py reads."""
  step = statistics.median(step_s)
  result = dict(impl=impl, step_ms=round(step * 1e3, 1), steps_ms=[round(s * 1e3, 1) for s in step_s],
                cpu_ms=round(statistics.median(cpu_s) * 1e3, 1),
                epoch_s=round(step * (VIEW1_TRAIN_PAIRS // args.batch), 2),
                pairs_per_s=round(args.batch / step, 2), first_step_s=round(first_s, 2),
                peak_rss_mb=round(peak_rss_mb()), params=num_params, batch=args.batch,
                image_size=args.image_size, dense_units=args.dense_units, **extra)
  print(f'{impl}: median step {result["step_ms"]:.0f} ms over {len(step_s)} steps, '
        f'{result["pairs_per_s"]:.1f} pairs/s, first step {first_s:.1f} s, '
        f'peak RSS {result["peak_rss_mb"]} MiB', file=sys.stderr)
  print(json.dumps(result), flush=True)
