"""WORKDIR/report.md: a run's figures and numbers on one page, rebuilt from the workdir's files."""

import os
from typing import Any, Mapping

import numpy as np

from lfw_siamese import files
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.evaluation import metrics
from lfw_siamese.evaluation import plots

LEARNING_CURVES = 'learning_curves.png'
ROC = 'roc.png'
SCORES = 'scores.png'
PAIRS = 'pairs.png'
ROC_VIEW2 = 'roc_view2.png'
ONE_SHOT = 'oneshot.png'
FUSION = 'fusion.png'
TAR_CAVEAT = ('TAR@FAR=1e-2 rests on few impostor pairs (500 in pairsDevTest, 300 per View 2 '
              'fold): a handful of pairs moves it; read it as a rough figure.')


def plot_learning_curves(workdir: str, best_epoch: int | None = None) -> str | None:
  """figures/learning_curves.png from metrics.jsonl; None when there is no epoch yet.

  The best epoch (marked) defaults to summary.json's.
  """
  path = workdir_lib.path(workdir, workdir_lib.METRICS)
  if not os.path.exists(path):
    return None
  rows = [r for r in plots.read_metrics(path) if 'epoch' in r]
  if not rows:
    return None
  if best_epoch is None:
    summary = workdir_lib.read_json(workdir_lib.path(workdir, workdir_lib.SUMMARY)) or {}
    best_epoch = summary.get('best_epoch')
  config = workdir_lib.read_json(workdir_lib.path(workdir, workdir_lib.CONFIG)) or {}
  return plots.learning_curves(rows, workdir_lib.figure_path(workdir, LEARNING_CURVES), best_epoch,
                               config.get('loss', 'bce'))


def plot_test_pairs(workdir: str, images: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                    threshold: float, title: str = 'pairsDevTest') -> list[str]:
  """figures/roc.png, scores.png and pairs.png for scored test pairs."""
  fpr, tpr, _ = metrics.roc_curve(scores, labels)
  auc = metrics.roc_auc(scores, labels)
  accuracy = metrics.accuracy(scores, labels, threshold)
  return [
      plots.roc({f'test (AUC {auc:.3f})': (fpr, tpr)}, workdir_lib.figure_path(workdir, ROC),
                title=f'ROC, {title}'),
      plots.score_histograms(scores, labels, threshold, workdir_lib.figure_path(workdir, SCORES),
                             title=f'{title}: accuracy {accuracy:.3f} at the chosen threshold'),
      plots.example_pairs(images, labels, scores, threshold,
                          workdir_lib.figure_path(workdir, PAIRS)),
  ]


def write_training_report(workdir: str, summary: Mapping[str, Any], test_pairs: Any,
                          test_scores: np.ndarray) -> str:
  """Figures (learning curves, ROC, score histograms, example pairs) and report.md after training.

  Args:
    workdir: the run's workdir (metrics.jsonl is read from it).
    summary: the training summary; its 'threshold' (chosen on validation) is used.
    test_pairs: datasets.PairSet of the test pairs (images and labels are used).
    test_scores: (N,) same-person probabilities of those pairs.

  Returns:
    The path of report.md.
  """
  plot_learning_curves(workdir, summary.get('best_epoch'))
  plot_test_pairs(workdir, test_pairs.images, test_pairs.labels, np.asarray(test_scores),
                  float(summary['threshold']))
  return write_report(workdir, summary)


def _number(value: Any, digits: int = 4) -> str:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return str(value)
  if isinstance(value, float) and value.is_integer() and abs(value) >= 2:
    value = int(value)  # A count stored as a float (summary.json holds floats).
  if isinstance(value, int):
    return f'{value:,}'
  return f'{value:.{digits}f}'


def _figure(workdir: str, name: str, caption: str) -> list[str]:
  if os.path.exists(workdir_lib.figure_path(workdir, name)):
    return [f'![{caption}]({workdir_lib.FIGURES}/{name})', '']
  return []


def _config_lines(config: Mapping[str, Any]) -> list[str]:
  data, model = config.get('data', {}), config.get('model', {})
  lines = [
      f"- data: {data.get('variant')} LFW, {data.get('color')}, crop {data.get('crop')}, "
      f"{data.get('image_size')}x{data.get('image_size')}, protocol {data.get('protocol')}"
      + (f" fold {data.get('fold')}" if data.get('protocol') == 'view2' else '')
      + f", {data.get('paradigm')} paradigm, no outside data",
      f"- model: conv filters {model.get('conv_filters')}, kernels {model.get('conv_kernels')}, "
      f"strides {model.get('conv_strides')}, max-pool {model.get('max_pool')}, "
      f"residual {model.get('residual')}, norm {model.get('norm')}, "
      f"dropout {model.get('dropout')}, "
      f"dense {model.get('dense_units')} {model.get('dense_activation')}, "
      f"head {model.get('head')}",
      f"- training: loss {config.get('loss')}, {config.get('optimizer')} lr "
      f"{config.get('learning_rate')} ({config.get('lr_schedule')}), batch "
      f"{config.get('batch_size')}, {config.get('num_epochs')} epochs, L2 "
      f"{config.get('l2_weight')}, flips {config.get('augment', {}).get('flip')}, affine "
      f"{config.get('augment', {}).get('affine')}, test-time flips {config.get('tta_flip')}, "
      f"seed {config.get('seed')}",
  ]
  return lines


def _view1_lines(view1: Mapping[str, Any], source: str) -> list[str]:
  rows = [
      ('threshold (chosen on the validation pairs)', view1.get('threshold')),
      ('validation accuracy at that threshold', view1.get('val_acc')),
      ('**test accuracy** at that threshold', view1.get('test_acc')),
      ('test ROC AUC', view1.get('test_auc')),
      ('test EER', view1.get('test_eer')),
      ('test TAR@FAR=1e-2 (see caveat)', view1.get('test_tar_at_far_1e-2')),
      ('test accuracy at a fixed 0.5 (not the protocol)', view1.get('test_acc_at_0_5')),
      ('test pairs', view1.get('test_pairs')),
  ]
  lines = [f'From `{source}`.', '', '| metric | value |', '|---|---|']
  lines += [f'| {name} | {_number(value)} |' for name, value in rows if value is not None]
  return lines + ['', TAR_CAVEAT, '']


def _view2_lines(view2: Mapping[str, Any]) -> list[str]:
  folds = view2.get('folds', [])
  lines = [
      f"{view2.get('paradigm', '?')} paradigm, {len(folds)} of 10 folds"
      + ('' if len(folds) == 10 else ' (**partial**: not the full protocol)') + '.',
      '',
      '- mean accuracy '
      + metrics.format_mean_and_standard_error(view2['mean_acc'], view2['standard_error']),
      f"- mean AUC {_number(view2.get('mean_auc'))}; AUC of the fold-averaged ROC "
      f"{_number(view2.get('averaged_roc_auc'))}",
      f"- mean EER {_number(view2.get('mean_eer'))}; accuracy at a fixed 0.5 (not the protocol) "
      f"{_number(view2.get('mean_acc_at_0_5'))}",
      '', '| fold | threshold (from the other nine) | accuracy | AUC | EER |',
      '|---|---|---|---|---|',
  ]
  lines += [f"| {f['fold']} | {_number(f['threshold'])} | {_number(f['test_acc'])} | "
            f"{_number(f['test_auc'])} | {_number(f['test_eer'])} |" for f in folds]
  return lines + ['']


def _one_shot_lines(one_shot: Mapping[str, Any]) -> list[str]:
  lines = [
      f"Test people with two or more images ({one_shot.get('people')} people, "
      f"{one_shot.get('images')} images, split `{one_shot.get('split')}`); each trial: one query, "
      'one reference image for each of N people, pick the best-scoring reference; ties count as '
      f"misses. Seed {one_shot.get('seed')}. The interval treats trials as independent, though "
      'they reuse the same people and images.', '',
      '| N | trials | accuracy | 95% CI (Wilson) | chance |', '|---|---|---|---|---|']
  lines += [f"| {r['num_way']} | {r['trials']} | {_number(r['accuracy'])} | "
            f"{_number(r['ci95'][0])} to {_number(r['ci95'][1])} | {_number(1 / r['num_way'])} |"
            for r in one_shot.get('results', [])]
  return lines + ['']


def write_report(workdir: str, summary: Mapping[str, Any] | None = None) -> str:
  """Writes WORKDIR/report.md from config.json, summary.json, eval_*.json and figures/ present."""
  config = workdir_lib.read_json(workdir_lib.path(workdir, workdir_lib.CONFIG)) or {}
  if summary is None:
    summary = workdir_lib.read_json(workdir_lib.path(workdir, workdir_lib.SUMMARY))
  view1 = workdir_lib.read_json(workdir_lib.result_path(workdir, 'view1'))
  view2 = workdir_lib.read_json(workdir_lib.result_path(workdir, 'view2'))
  one_shot = workdir_lib.read_json(workdir_lib.result_path(workdir, 'oneshot'))
  lines = [f'# Run report: `{os.path.basename(os.path.abspath(workdir))}`', '']
  if config:
    lines += ['## Configuration', ''] + _config_lines(config) + ['']
  lines += ['## Training', '']
  if summary:
    shown = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
    lines += ['| summary.json | value |', '|---|---|']
    lines += [f'| {k} | {_number(v)} |' for k, v in shown.items()] + ['']
  lines += _figure(workdir, LEARNING_CURVES, 'learning curves: loss and accuracy per epoch')
  if view1 or (summary and 'test_acc' in summary):
    lines += ['## Verification on the test pairs', '']
    lines += _view1_lines(view1 or summary, 'eval_view1.json' if view1 else 'summary.json')
    lines += _figure(workdir, ROC, 'ROC of the test pairs')
    lines += _figure(workdir, SCORES, 'score histograms of same and different test pairs')
    lines += _figure(workdir, PAIRS, 'test pairs classified correctly and incorrectly')
    lines += _figure(workdir, FUSION, 'the network and LBP scores of the test pairs, fused')
  if view2:
    lines += ['## View 2, 10-fold protocol', ''] + _view2_lines(view2)
    lines += _figure(workdir, ROC_VIEW2, 'fold-averaged ROC')
  if one_shot:
    lines += ['## N-way one-shot identification', ''] + _one_shot_lines(one_shot)
    lines += _figure(workdir, ONE_SHOT, 'one-shot accuracy against N')
  path = workdir_lib.path(workdir, workdir_lib.REPORT)
  with files.atomic_write(path) as f:
    f.write('\n'.join(lines).rstrip() + '\n')
  return path
