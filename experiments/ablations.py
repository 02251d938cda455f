"""Levers of the BCE recipes, each measured on its own against one short baseline, resumably.

  LFW_DIR=path/to/lfw python experiments/ablations.py --workdir runs/ablations [--only NAME ...]

Every run is declared below as (name, lever, overrides of BASELINE); each trains on View 1 into
WORKDIR/NAME with train.train_and_evaluate and is skipped when WORKDIR/NAME/summary.json exists, so
an interrupted sweep resumes where it stopped. Runs whose overrides touch only scoring (tta_flip)
re-score the baseline's best checkpoint instead of training again. Prints the table (markdown) and
writes it to WORKDIR/ablations.md and WORKDIR/ablations.json.
"""

import argparse
import json
import pathlib

from lfw_siamese import checkpointing
from lfw_siamese import host_memory
from lfw_siamese import train
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.configs import unrestricted_bce
from lfw_siamese.data import loading
from lfw_siamese.model import networks


def baseline_config():
  """Short baseline: unrestricted_bce's encoder, restricted BCE, no flips, constant LR, 8 epochs."""
  config = unrestricted_bce.get_config()
  config.data.paradigm = 'restricted'
  config.augment.flip = False
  config.lr_schedule = 'constant'
  config.num_epochs = 8
  config.tta_flip = False
  return config


_STRONG_ENCODER = {'model.residual': True, 'model.norm': 'group'}
_UNRESTRICTED = {'data.paradigm': 'unrestricted'}

# (name, lever, overrides of the baseline). Fields that only change scoring re-score the baseline.
RUNS = (
    ('baseline', 'baseline (restricted BCE, gray, crop 120 -> 64, no aug)', {}),
    ('flip', 'augmentation: random flips', {'augment.flip': True}),
    ('affine', "augmentation: Koch's affine", {'augment.affine': True}),
    ('rgb', 'colour: RGB', {'data.color': 'rgb'}),
    ('crop150', 'crop: 150 px', {'data.crop': 150}),
    ('crop100', 'crop: 100 px', {'data.crop': 100}),
    ('size96', 'resolution: 96x96', {'data.image_size': 96}),
    ('unrestricted_bce', 'paradigm: unrestricted, BCE on identity pairs', _UNRESTRICTED),
    ('unrestricted_contrastive', 'loss: contrastive (unrestricted)',
     {**_UNRESTRICTED, 'loss': 'contrastive', 'margin': 1.0}),
    ('unrestricted_triplet', 'loss: batch-hard triplet (unrestricted)',
     {**_UNRESTRICTED, 'loss': 'triplet', 'margin': 0.5}),
    ('residual_group', 'encoder: residual blocks + GroupNorm', _STRONG_ENCODER),
    ('wide', 'encoder: filters (64, 128, 128)', {'model.conv_filters': (64, 128, 128)}),
    ('relu_dense', 'encoder: dense 512 ReLU', {'model.dense_activation': 'relu'}),
    ('head_cosine', 'head: cosine', {'model.head': 'cosine'}),
    ('lr3e-4', 'learning rate 3e-4', {'learning_rate': 3e-4}),
    ('cosine_lr', 'schedule: cosine decay to 0', {'lr_schedule': 'cosine'}),
    ('tta_flip', 'test-time flip averaging (baseline weights)', {'tta_flip': True}),
    ('combined', 'the four gains together: crop 150, 96x96, wide, affine',
     {'data.crop': 150, 'data.image_size': 96, 'model.conv_filters': (64, 128, 128),
      'augment.affine': True}),
)
_SCORING_ONLY = frozenset({'tta_flip'})


def apply_overrides(config, overrides):
  """Sets dotted fields ('model.head') of a ConfigDict in place."""
  for name, value in overrides.items():
    *parents, leaf = name.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def run_config(overrides):
  return apply_overrides(baseline_config(), overrides)


def rescore(source_workdir, config, workdir):
  """Scores source_workdir's best checkpoint with a scoring-only change of config (no training)."""
  _, params = checkpointing.load_best(str(source_workdir))
  data = loading.training_data(config)
  summary, _, _ = train.score(networks.build(config.model), params, data, config)
  source = json.loads((source_workdir / 'summary.json').read_text())
  summary.update({name: source[name] for name in ('best_epoch', 'val_acc', 'train_seconds')},
                 rescored_from=str(source_workdir), config=workdir_lib.config_dict(config))
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'summary.json').write_text(json.dumps(summary, indent=2))
  return summary


def run(name, overrides, root):
  """Trains (or re-scores, or reads the finished summary of) one ablation run."""
  workdir = root / name
  summary_path = workdir / 'summary.json'
  if summary_path.exists():
    return json.loads(summary_path.read_text())
  config = run_config(overrides)
  if overrides and set(overrides) <= _SCORING_ONLY:
    run('baseline', {}, root)  # Its weights are the ones re-scored.
    return rescore(root / 'baseline', config, workdir)
  print(f'== {name}: {overrides}', flush=True)
  return train.train_and_evaluate(config, str(workdir))


def table(rows):
  """Markdown table of the runs, with test accuracy's change against the baseline."""
  baseline = next((r for r in rows if r['name'] == 'baseline' and 'test_acc' in r), None)
  lines = ['| run | lever | overrides of the baseline | test acc (val threshold) | vs baseline '
           '| test AUC | val acc | best epoch | train s |', '|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    overrides = ', '.join(f'{k}={v}' for k, v in r['overrides'].items()) or '-'
    if 'test_acc' not in r:
      lines.append(f"| {r['name']} | {r['lever']} | {overrides} | not run yet | | | | | |")
      continue
    delta = f"{r['test_acc'] - baseline['test_acc']:+.3f}" if baseline else ''
    lines.append(f"| {r['name']} | {r['lever']} | {overrides} | {r['test_acc']:.3f} | {delta} | "
                 f"{r['test_auc']:.3f} | {r['val_acc']:.3f} | {r['best_epoch']} | "
                 f"{r['train_seconds']:.0f} |")
  return '\n'.join(lines) + '\n'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--only', nargs='*', help='run only these names (the table lists all)')
  parser.add_argument('--table_only', action='store_true', help='train nothing; print the table')
  args = parser.parse_args()
  host_memory.configure(baseline_config())  # Before JAX starts.
  root = pathlib.Path(args.workdir)
  root.mkdir(parents=True, exist_ok=True)
  rows = []
  for name, lever, overrides in RUNS:
    wanted = not args.table_only and (not args.only or name in args.only)
    if not wanted and not (root / name / 'summary.json').exists():
      rows.append({'name': name, 'lever': lever, 'overrides': overrides})
      continue
    summary = run(name, overrides, root)
    rows.append({'name': name, 'lever': lever, 'overrides': overrides,
                 **{k: summary[k] for k in ('test_acc', 'test_auc', 'threshold', 'val_acc',
                                            'best_epoch', 'train_seconds')}})
  (root / 'ablations.json').write_text(json.dumps(rows, indent=2, default=str))
  (root / 'ablations.md').write_text(table(rows))
  print(table(rows))


if __name__ == '__main__':
  main()
