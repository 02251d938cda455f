"""Adds (or refits) the LBP fusion stage of trained workdirs: python -m lfw_siamese.refit_fusion
--workdir DIR [--workdir DIR2 ...] [--radii R,...] [--grids G,...] [--dims N] [--metric-steps N]."""

import argparse
import sys

from lfw_siamese import config_check
from lfw_siamese import inference
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.classic import fusion
from lfw_siamese.data import loading
from lfw_siamese.data.lists import LfwDataError
from lfw_siamese.evaluation import report


def add_to_workdir(workdir: str, settings, *, lfw_dir: str | None = None,
                   batch_size: int = 64) -> dict:
  """Adds (or refits) the fusion stage of a trained workdir; updates summary.json and report.md."""
  if not workdir_lib.has_summary(workdir):
    raise FileNotFoundError(f'{workdir_lib.path(workdir, workdir_lib.SUMMARY)}: no such file; the '
                            'fusion stage follows a finished training')
  verifier = inference.load(workdir, batch_size=batch_size, with_fusion=False)
  config_check.check_lbp_fusion(settings, verifier.image_shape[0])
  if verifier.config.data.paradigm != 'unrestricted':
    raise ValueError(f'{workdir}: trained in the {verifier.config.data.paradigm} paradigm; the LBP '
                     'descriptor is learned from identities (unrestricted paradigm only)')
  if lfw_dir:
    with verifier.config.unlocked():
      verifier.config.data.lfw_dir = lfw_dir
  data = loading.training_data(verifier.config)
  stage, fused, test = fusion.fit_lbp_fusion(
      settings, data, verifier.score_pairs(data.validation), verifier.score_pairs(data.test),
      figure=workdir_lib.figure_path(workdir, report.FUSION),
      announce=lambda stage: print(stage, file=sys.stderr, flush=True))
  # A stage fitted before, perhaps with other grids, leaves nothing behind.
  summary = {name: value for name, value in workdir_lib.read_summary(workdir).items()
             if not name.startswith(('fusion_', 'lbp_only_'))}
  fused.pop('val_acc')  # As training's summary: val_acc stays the best epoch's, at 0.5.
  summary.update(fused)
  summary['config']['lbp_fusion'] = settings.to_dict()
  stage.save(workdir)
  workdir_lib.write_summary(workdir, summary)
  report.write_training_report(workdir, summary, data.test, test)
  return summary


def _parser() -> argparse.ArgumentParser:
  defaults = config_check.defaults().lbp_fusion
  parser = argparse.ArgumentParser(
      prog='python -m lfw_siamese.refit_fusion',
      description='Adds the LBP fusion stage to trained workdirs (unrestricted paradigm): learns '
                  'the descriptors from the training people and the fusion on the validation '
                  'pairs, then rescores the test pairs (summary.json keeps the CNN\'s own '
                  'numbers under cnn_only_ keys).')
  parser.add_argument('--workdir', action='append', required=True,
                      help='a trained workdir (repeat for several, e.g. View 2 folds)')
  parser.add_argument('--radii', default=','.join(map(str, defaults.radii)),
                      help='LBP circle radii in pixels, comma-separated')
  parser.add_argument('--grids', default=','.join(map(str, defaults.grids)),
                      help='cells per side, comma-separated: one descriptor for each')
  parser.add_argument('--dims', type=int, default=defaults.dims,
                      help='PCA dimensions before whitening')
  parser.add_argument('--metric-steps', type=int, default=defaults.metric.steps,
                      help='training steps of the metric learned on the descriptors (0: none; '
                      'its other settings are the defaults\' lbp_fusion.metric)')
  parser.add_argument('--lfw-dir', default=None, help='overrides the LFW location in the config')
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  settings = config_check.defaults().lbp_fusion
  settings.enabled, settings.dims, settings.metric.steps = True, args.dims, args.metric_steps
  for flag in ('radii', 'grids'):
    text = getattr(args, flag)
    try:
      settings[flag] = tuple(int(value) for value in text.split(','))
    except ValueError:
      print(f'--{flag}: expected comma-separated integers, got {text!r}', file=sys.stderr)
      return 2
  for workdir in args.workdir:
    try:
      summary = add_to_workdir(workdir, settings, lfw_dir=args.lfw_dir)
    except (FileNotFoundError, ValueError, LfwDataError) as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    print(f"{workdir}: test accuracy {summary['test_acc']:.4f} (CNN alone "
          f"{summary['cnn_only_test_acc']:.4f}), AUC {summary['test_auc']:.4f} (CNN alone "
          f"{summary['cnn_only_test_auc']:.4f})")
  return 0


if __name__ == '__main__':
  sys.exit(main())
