"""Trains and scores the View 2 10-fold protocol: one model per held-out fold, resumable.

  python experiments/view2_folds.py --workdir runs/view2_default \
      [--config lfw_siamese/configs/default.py] [--config.num_epochs=20] [--folds 0,1,2]

Fold k trains in WORKDIR/fold_k with data.protocol='view2', data.fold=k (so on the other nine
folds: their pairs when restricted, their people when unrestricted). A fold with a summary.json
is done and skipped; an interrupted one resumes from its latest checkpoint. At the end it runs
`python -m lfw_siamese.evaluate --protocol view2` on WORKDIR.
"""

import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from lfw_siamese import checkpointing
from lfw_siamese import evaluate
from lfw_siamese import host_memory
from lfw_siamese import lists


def fold_config(config, fold: int):
  """The config with fold `fold` held out under the View 2 protocol."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.protocol = 'view2'
    config.data.fold = fold
  return config


def fold_is_done(config, fold_workdir: str) -> bool:
  """True when the fold finished training with this config; raises if it holds another config."""
  config_path = os.path.join(fold_workdir, checkpointing.CONFIG_FILE)
  if os.path.exists(config_path):
    differences = checkpointing.config_differences(
        checkpointing.config_dict(checkpointing.read_config(fold_workdir)),
        checkpointing.config_dict(config))
    if differences:
      raise checkpointing.WorkdirConflict(
          f'{config_path}: this fold was trained with another config ({"; ".join(differences[:3])})'
          '; use another --workdir')
  return os.path.exists(os.path.join(fold_workdir, 'summary.json'))


def train_folds(config, workdir: str, folds, train_fn=None) -> None:
  """Trains every fold not yet done, in order; each call resumes where that fold stopped."""
  if train_fn is None:
    from lfw_siamese import train  # pylint: disable=g-import-not-at-top
    train_fn = train.train_and_evaluate
  for fold in folds:
    fold_workdir = evaluate.fold_workdir(workdir, fold)
    config_k = fold_config(config, fold)
    if fold_is_done(config_k, fold_workdir):
      print(f'fold {fold}: done already ({fold_workdir}/summary.json)', file=sys.stderr)
      continue
    print(f'fold {fold}: training in {fold_workdir}', file=sys.stderr)
    train_fn(config_k, fold_workdir)


def _define_flags():
  """The command line (defined only when run as a script, so importing this defines no flags)."""
  default_config = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lfw_siamese',
                                'configs', 'default.py')
  return {
      'config': config_flags.DEFINE_config_file('config', default_config, 'training config file',
                                                lock_config=False),
      'workdir': flags.DEFINE_string('workdir', None, 'folder that receives fold_0 .. fold_9',
                                     required=True),
      'folds': flags.DEFINE_list('folds', [str(k) for k in range(10)],
                                 'the folds to train and score'),
      'evaluate': flags.DEFINE_bool('evaluate', True, 'score the folds when training is done'),
  }


def main(options) -> int:
  logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint read and write at INFO.
  host_memory.configure(options['config'].value)  # Before JAX starts.
  try:
    folds = [int(k) for k in options['folds'].value]
  except ValueError:
    print(f"error: --folds: expected fold numbers 0..9, got {options['folds'].value}",
          file=sys.stderr)
    return 1
  workdir = options['workdir'].value
  try:
    train_folds(options['config'].value, workdir, folds)
    if options['evaluate'].value:
      result = evaluate.evaluate_view2(workdir, folds=folds)
      print(evaluate.format_table('view2', result))
  except (checkpointing.WorkdirConflict, FileNotFoundError, ValueError,
          lists.LfwDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


def _parse_flags(argv: list[str]) -> list[str]:
  """absl parsing, but a bad flag or config override is one line on stderr."""
  try:
    remaining = flags.FLAGS(argv)
    flags.FLAGS['config'].value.keys()  # A config file that failed to load raises here.
  except Exception as e:  # pylint: disable=broad-except
    message = ' '.join(str(e).split())
    unknown = re.fullmatch(r"""["']*([\w.]+)["']*""", message)
    if unknown:  # config_flags reports an unknown override as just the field's name.
      flag = next((a.split('=')[0] for a in argv if a.startswith('--config.')
                   and a.split('=')[0].endswith('.' + unknown.group(1))), unknown.group(1))
      message = f'{flag}: no such config field (lfw_siamese/configs/base.py lists every field)'
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)
  if len(remaining) > 1:
    print(f'error: unexpected arguments {remaining[1:]}', file=sys.stderr)
    sys.exit(2)
  return remaining


if __name__ == '__main__':
  _OPTIONS = _define_flags()
  app.run(lambda argv: sys.exit(main(_OPTIONS)), flags_parser=_parse_flags)
