"""Trains and scores the View 2 10-fold protocol: one model per held-out fold, resumable.

  python experiments/view2_folds.py --workdir runs/view2_default \
      [--config lfw_siamese/configs/default.py] [--config.num_epochs=20] [--folds 0,1,2]

Fold k trains in WORKDIR/fold_k with data.protocol='view2', data.fold=k (so on the other nine
folds: their pairs when restricted, their people when unrestricted). A fold with a summary.json
is done and skipped; an interrupted one resumes from its latest checkpoint. At the end it runs
`python -m lfw_siamese.evaluate --protocol view2` on WORKDIR.
"""

import argparse
import os
import sys

from lfw_siamese import config_check
from lfw_siamese import config_flags
from lfw_siamese import evaluate
from lfw_siamese import host_memory
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import lists


def fold_config(config, fold: int):
  """The config with fold `fold` held out under the View 2 protocol."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.protocol = 'view2'
    config.data.fold = fold
  return config


def fold_is_done(config, fold_workdir: str) -> bool:
  """True when the fold finished training with this config; raises if it holds another config."""
  config_path = os.path.join(fold_workdir, workdir_lib.CONFIG)
  if os.path.exists(config_path):
    differences = workdir_lib.config_differences(
        workdir_lib.config_dict(workdir_lib.read_config(fold_workdir)),
        workdir_lib.config_dict(config))
    if differences:
      raise workdir_lib.WorkdirConflict(
          f'{config_path}: this fold was trained with another config ({"; ".join(differences[:3])})'
          '; use another --workdir')
  return workdir_lib.has_summary(fold_workdir)


def train_folds(config, workdir: str, folds, train_fn=None) -> None:
  """Trains every fold not yet done, in order; each call resumes where that fold stopped."""
  if train_fn is None:
    from lfw_siamese import train  # pylint: disable=g-import-not-at-top
    train_fn = train.train_and_evaluate
  for fold in folds:
    fold_workdir = workdir_lib.fold_workdir(workdir, fold)
    config_k = fold_config(config, fold)
    if fold_is_done(config_k, fold_workdir):
      print(f'fold {fold}: done already ({fold_workdir}/summary.json)', file=sys.stderr)
      continue
    print(f'fold {fold}: training in {fold_workdir}', file=sys.stderr)
    train_fn(config_k, fold_workdir)


def _parser() -> argparse.ArgumentParser:
  default_config = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lfw_siamese',
                                'configs', 'default.py')
  parser = argparse.ArgumentParser(
      prog='experiments/view2_folds.py', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog='--config.FIELD=VALUE overrides a field of the config (configs/base.py lists them).')
  parser.add_argument('--workdir', required=True, help='folder that receives fold_0 .. fold_9')
  parser.add_argument('--config', default=default_config, help='training config file')
  parser.add_argument('--folds', default=','.join(map(str, range(10))),
                      help='the folds to train and score, comma-separated')
  parser.add_argument('--evaluate', action=argparse.BooleanOptionalAction, default=True,
                      help='score the folds when training is done')
  return parser


def main(argv: list[str] | None = None) -> int:
  try:
    overrides, argv = config_flags.split_overrides(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    config = config_flags.apply_overrides(config_check.load_file(args.config), overrides)
  except config_check.ConfigError as e:
    print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
    return 2
  host_memory.configure(config)  # Before JAX starts.
  try:
    folds = [int(k) for k in args.folds.split(',') if k.strip()]
  except ValueError:
    print(f'error: --folds: expected fold numbers 0..9, got {args.folds}', file=sys.stderr)
    return 1
  try:
    train_folds(config, args.workdir, folds)
    if args.evaluate:
      result = evaluate.evaluate_view2(args.workdir, folds=folds)
      print(evaluate.format_table('view2', result))
  except (workdir_lib.WorkdirConflict, config_check.ConfigError, FileNotFoundError, ValueError,
          lists.LfwDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
