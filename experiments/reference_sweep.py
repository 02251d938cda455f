"""The seed report's one-at-a-time sweep, declared as data and run by one resumable driver.

  python experiments/reference_sweep.py --workdir runs/sweep [--image_size 96] [--num_epochs 30]

Axes are swept in the report's order; after each axis the value with the best validation accuracy
is kept for the next ones (the report picked on test accuracy; we keep test out of the choice).
Every point trains into its own workdir named by its full setting, so a point shared by two axes
trains once and an interrupted sweep resumes where it stopped. Writes sweep.json, sweep.md and
sweep.png under --workdir.
"""

import argparse
import json
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from lfw_siamese import host_memory
from lfw_siamese import train
from lfw_siamese.configs import seed


def _set_layers(config, layers):
  model = config.model
  model.conv_filters = (model.conv_filters[0],) * layers
  model.conv_kernels = (model.conv_kernels[0],) * layers
  model.conv_strides = (2,) * layers
  model.max_pool = (False,) * layers


def _set_filters(config, filters):
  config.model.conv_filters = (filters,) * len(config.model.conv_filters)


def _set_kernel(config, kernel):
  config.model.conv_kernels = (kernel,) * len(config.model.conv_kernels)


def _set_field(path):
  def setter(config, value):
    *parents, leaf = path.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return setter


# (axis name, values, how a value changes the config), in the report's order.
AXES = (
    ('layers', (2, 3, 4, 5), _set_layers),
    ('filters', (32, 64, 128), _set_filters),
    ('kernel', (3, 5, 7), _set_kernel),
    ('dense', (64, 512, 1024), _set_field('model.dense_units')),
    ('optimizer', ('adam', 'rmsprop'), _set_field('optimizer')),
    ('batch', (32, 64, 128), _set_field('batch_size')),
    ('learning_rate', (6e-3, 6e-4, 6e-5, 6e-6), _set_field('learning_rate')),
)
# The report's starting point: 4 conv layers of 64 3x3 filters, dense 64, batch 32, Adam 6e-4.
START = {'layers': 4, 'filters': 64, 'kernel': 3, 'dense': 64, 'optimizer': 'adam', 'batch': 32,
         'learning_rate': 6e-4}


def point_config(setting, image_size, num_epochs):
  """The seed config at the sweep's resolution with one full setting of the axes applied."""
  config = seed.get_config()
  config.data.image_size = image_size
  config.num_epochs = num_epochs
  for name, _, apply in AXES:
    apply(config, setting[name])
  return config


def point_name(setting):
  return '_'.join(f'{name}={setting[name]}' for name, _, _ in AXES)


def final_side(config):
  """Side of the last conv block's output under VALID padding; < 1 means the point cannot run."""
  side = config.data.image_size
  for kernel, stride in zip(config.model.conv_kernels, config.model.conv_strides):
    side = (side - kernel) // stride + 1
  return side


def run_point(setting, root, image_size, num_epochs):
  """Trains one point (or reads its finished summary) and returns its summary; None if too small."""
  config = point_config(setting, image_size, num_epochs)
  if final_side(config) < 1:
    return None
  workdir = root / point_name(setting)
  summary_path = workdir / 'summary.json'
  if summary_path.exists():
    return json.loads(summary_path.read_text())
  return train.train_and_evaluate(config, str(workdir))


def sweep(root, image_size, num_epochs):
  """Runs the greedy one-at-a-time sweep; returns one row per (axis, value)."""
  setting = dict(START)
  rows = []
  for name, values, _ in AXES:
    results = {}
    for value in values:
      trial = dict(setting, **{name: value})
      summary = run_point(trial, root, image_size, num_epochs)
      if summary is None:
        print(f'{point_name(trial)}: feature maps shrink below 1 pixel at {image_size}x{image_size}; '
              'skipped')
        continue
      results[value] = summary
      rows.append({'axis': name, 'value': value, 'val_acc': summary['val_acc'],
                   'test_acc': summary['test_acc'], 'test_acc_at_0_5': summary['test_acc_at_0_5'],
                   'best_epoch': summary['best_epoch'], 'workdir': point_name(trial)})
    setting[name] = max(results, key=lambda v: results[v]['val_acc'])
    for row in rows[-len(results):]:
      row['chosen'] = row['value'] == setting[name]
  return rows, setting


def write_outputs(root, rows, setting, image_size, num_epochs):
  """Writes the sweep's table (markdown and JSON) and a plot of every axis."""
  (root / 'sweep.json').write_text(json.dumps(
      {'image_size': image_size, 'num_epochs': num_epochs, 'final_setting': setting,
       'rows': rows}, indent=2))
  lines = [f'Sweep at {image_size}x{image_size}, {num_epochs} epochs; * = kept for later axes.', '',
           '| axis | value | val acc | test acc (val threshold) | test acc at 0.5 | best epoch |',
           '|---|---|---|---|---|---|']
  lines += [f"| {r['axis']} | {r['value']}{' *' if r['chosen'] else ''} | {r['val_acc']:.3f} | "
            f"{r['test_acc']:.3f} | {r['test_acc_at_0_5']:.3f} | {r['best_epoch']} |" for r in rows]
  (root / 'sweep.md').write_text('\n'.join(lines) + '\n')

  fig, axes = plt.subplots(1, len(AXES), figsize=(3 * len(AXES), 3), sharey=True)
  for ax, (name, _, _) in zip(axes, AXES):
    points = [r for r in rows if r['axis'] == name]
    values = [r['value'] for r in points]
    ticks = range(len(points))
    ax.plot(ticks, [r['val_acc'] for r in points], 'o-', label='validation')
    ax.plot(ticks, [r['test_acc'] for r in points], 's--', label='test')
    ax.set_xticks(list(ticks), [str(v) for v in values], rotation=45)
    ax.set_title(name)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel('accuracy')
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(root / 'sweep.png', dpi=100)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--image_size', type=int, default=96,
                      help='side of the resized 250x250 faces (the report used 250)')
  parser.add_argument('--num_epochs', type=int, default=30)
  args = parser.parse_args()
  host_memory.configure(seed.get_config())  # Before JAX starts.
  root = pathlib.Path(args.workdir)
  root.mkdir(parents=True, exist_ok=True)
  rows, setting = sweep(root, args.image_size, args.num_epochs)
  write_outputs(root, rows, setting, args.image_size, args.num_epochs)
  print((root / 'sweep.md').read_text())


if __name__ == '__main__':
  main()
