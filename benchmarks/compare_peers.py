"""Runs the project's step and its Keras and PyTorch peers in turn, on this machine; prints ratios.

  python benchmarks/compare_peers.py [--peers-python PATH] [--rounds R] [--steps N] [--batch B]
      [--only project,project_bf16,keras,torch,torch_compile,torch_bf16]

Each benchmark runs in its own process (one at a time, so that none slows another): the project
with this interpreter (benchmarks/epoch_time.py on the seed config; project_bf16: the same with
model.compute_dtype=bfloat16), the peers with --peers-python (torch_compile: through torch.compile;
torch_bf16: under bfloat16 autocast, also compiled), an interpreter that has the `peers`
extra (`pip install -e '.[peers]'`, in a separate environment: TensorFlow must never enter the
project's). With --rounds above 1 they alternate (project, keras, torch, project, ...) and each
one's median over rounds is compared, which evens out a machine whose speed drifts. Prints a
table and, last, one JSON line.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_PEERS_PYTHON = os.environ.get('PEERS_PYTHON',
                                       os.path.join(_HERE, 'peers', '.venv', 'bin', 'python'))


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--peers-python', default=_DEFAULT_PEERS_PYTHON,
                      help='interpreter with keras, tensorflow and torch (env PEERS_PYTHON)')
  parser.add_argument('--rounds', type=int, default=1)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--dense-units', type=int, default=1024)
  parser.add_argument('--only', default='project,keras,torch',
                      help='comma-separated subset of project,project_bf16 (mixed precision),'
                      'keras,torch,torch_compile,torch_bf16')
  return parser.parse_args(argv)


def commands(args) -> dict[str, list[str]]:
  shared = ['--steps', str(args.steps), '--batch', str(args.batch)]
  project = [sys.executable, os.path.join(_HERE, 'epoch_time.py'), *shared]
  if args.dense_units != 1024:
    project += ['--set', f'model.dense_units={args.dense_units}']
  peer_flags = [*shared, '--dense-units', str(args.dense_units)]
  torch = [args.peers_python, os.path.join(_HERE, 'peers', 'torch_step.py'), *peer_flags]
  return {
      'project': project,
      'project_bf16': [*project, '--set', 'model.compute_dtype=bfloat16'],
      'keras': [args.peers_python, os.path.join(_HERE, 'peers', 'keras_step.py'), *peer_flags],
      'torch': torch,
      'torch_compile': [*torch, '--compile'],
      'torch_bf16': [*torch, '--compile', '--bf16'],
  }


def run(name: str, command: list[str]) -> dict:
  """Runs one benchmark; its last stdout line is its JSON result."""
  print(f'running {name}: {" ".join(command)}', file=sys.stderr, flush=True)
  if not os.path.exists(command[0]):
    sys.exit(f'compare_peers.py: error: {command[0]}: no such interpreter '
             f'(give --peers-python, one with the `peers` extra installed)')
  completed = subprocess.run(command, capture_output=True, text=True, check=False)
  lines = [line for line in completed.stdout.splitlines() if line.startswith('{')]
  if completed.returncode or not lines:
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
    sys.exit(f'compare_peers.py: error: {name} failed (exit {completed.returncode}): '
             + ' | '.join(tail))
  return json.loads(lines[-1])


def main(argv=None) -> dict:
  args = parse_args(argv)
  wanted = [name for name in args.only.split(',') if name]
  every = commands(args)
  results = {name: [] for name in wanted}
  for _ in range(args.rounds):
    for name in wanted:
      results[name].append(run(name, every[name]))
  summary = {}
  for name, runs in results.items():
    summary[name] = {
        'step_ms': round(statistics.median(r['step_ms'] for r in runs), 1),
        'cpu_ms': round(statistics.median(r.get('step_cpu_ms', r.get('cpu_ms', 0))
                                          for r in runs), 1),
        'peak_rss_mb': max(r['peak_rss_mb'] for r in runs),
        'device_peak_mb': max((r.get('device_peak_mb') or 0) for r in runs) or None,
        'runs_step_ms': [r['step_ms'] for r in runs],
    }
  baseline = summary.get('project')
  print(f'{"implementation":<15}{"median step":>13}{"CPU per step":>14}{"peak RSS":>11}'
        f'{"project / it":>14}{"  per round (side by side)"}')
  for name, row in summary.items():
    ratio = baseline['step_ms'] / row['step_ms'] if baseline else float('nan')
    row['project_over_it'] = round(ratio, 3)
    # Each round's runs are minutes apart: their ratio is the least disturbed by drift.
    row['project_over_it_by_round'] = [
        round(mine['step_ms'] / theirs['step_ms'], 3)
        for mine, theirs in zip(results.get('project', []), results[name])]
    print(f'{name:<15}{row["step_ms"]:>10.0f} ms{row["cpu_ms"]:>11.0f} ms'
          f'{row["peak_rss_mb"]:>8} MiB{ratio:>14.2f}  '
          + ', '.join(f'{r:.2f}' for r in row['project_over_it_by_round']))
  project = results.get('project', [{}])[-1]
  output = {'rounds': args.rounds, 'steps': args.steps, 'batch': args.batch,
            'dense_units': args.dense_units, 'results': summary,
            'ceiling_gflops_per_s': project.get('ceiling_gflops_per_s'),
            'project_gflops_per_s': project.get('gflops_per_s')}
  print(json.dumps(output), flush=True)
  return output


if __name__ == '__main__':
  main()
