"""Figures and report.md: the files exist, are valid PNGs, and the report ties them to numbers."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from lfw_siamese.data import datasets
from lfw_siamese.evaluation import metrics
from lfw_siamese.evaluation import plots
from lfw_siamese.evaluation import report

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def assert_valid_png(path, min_side=200):
  with open(path, 'rb') as f:
    assert f.read(8) == PNG_SIGNATURE, path
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    assert image.format == 'PNG' and min(image.size) >= min_side, (path, image.size)
    assert np.asarray(image.convert('L')).std() > 5, f'{path} looks blank'


def _scored_pairs(n=120, side=24, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 2).astype(np.int32)
  scores = np.clip(rng.normal(0.4 + 0.25 * labels, 0.15), 0, 1)
  images = rng.integers(0, 256, (n, 2, side, side, channels), dtype=np.uint8)
  pairs = datasets.PairSet(images=images, labels=labels, names=np.array([['A', 'B']] * n),
                                 numbers=np.ones((n, 2), np.int32))
  return pairs, scores


def _write_run(workdir, epochs=5):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    for epoch in range(1, epochs + 1):
      f.write(json.dumps({'epoch': epoch, 'train_loss': 1 / epoch, 'train_acc': 0.5 + epoch / 20,
                          'val_loss': 1.2 / epoch, 'val_acc': 0.5 + epoch / 25}) + '\n')
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'data': {'variant': 'deepfunneled', 'protocol': 'view1', 'paradigm': 'restricted'},
               'model': {'conv_filters': [8, 8]}, 'loss': 'bce'}, f)


def test_training_report_writes_figures_and_markdown(tmp_path):
  workdir = str(tmp_path / 'run')
  _write_run(workdir)
  pairs, scores = _scored_pairs()
  threshold = metrics.best_threshold(scores, pairs.labels)
  summary = {'threshold': threshold, 'test_acc': metrics.accuracy(scores, pairs.labels, threshold),
             'test_auc': metrics.roc_auc(scores, pairs.labels), 'best_epoch': 4,
             'config': {'nested': 'not shown'}}
  path = report.write_training_report(workdir, summary, pairs, scores)
  assert path == os.path.join(workdir, 'report.md')
  text = open(path).read()
  for name in ('learning_curves.png', 'roc.png', 'scores.png', 'pairs.png'):
    assert_valid_png(os.path.join(workdir, 'figures', name))
    assert f'](figures/{name})' in text
  assert f"{summary['test_acc']:.4f}" in text and f'{threshold:.4f}' in text
  assert 'restricted paradigm' in text and 'not shown' not in text


def test_report_only_links_figures_that_exist(tmp_path):
  workdir = str(tmp_path / 'run')
  _write_run(workdir)
  text = open(report.write_report(workdir)).read()
  assert 'figures/' not in text and '## Training' in text


def test_report_shows_view2_and_one_shot_results(tmp_path):
  workdir = str(tmp_path)
  folds = [{'fold': k, 'threshold': 0.5, 'test_acc': 0.7 + k / 100, 'test_auc': 0.8,
            'test_eer': 0.3} for k in range(10)]
  with open(os.path.join(workdir, 'eval_view2.json'), 'w') as f:
    json.dump({'paradigm': 'restricted', 'mean_acc': 0.745, 'standard_error': 0.00957,
               'mean_auc': 0.8, 'averaged_roc_auc': 0.79, 'mean_eer': 0.3,
               'mean_acc_at_0_5': 0.7, 'folds': folds}, f)
  with open(os.path.join(workdir, 'eval_oneshot.json'), 'w') as f:
    json.dump({'split': 'view1_test', 'people': 600, 'images': 2000, 'seed': 0, 'results': [
        {'num_way': 5, 'trials': 100, 'accuracy': 0.5, 'ci95': [0.4038, 0.5962]}]}, f)
  text = open(report.write_report(workdir)).read()
  assert '0.7450 +- 0.0096' in text and '10 of 10 folds' in text and 'partial' not in text
  assert '| 5 | 100 | 0.5000 | 0.4038 to 0.5962 | 0.2000 |' in text


def test_example_pairs_with_an_empty_group_and_rgb(tmp_path):
  pairs, _ = _scored_pairs(n=8, channels=3)
  scores = pairs.labels.astype(float)  # Every pair right: the two error rows are empty.
  path = plots.example_pairs(pairs.images, pairs.labels, scores, 0.5, str(tmp_path / 'p.png'))
  assert_valid_png(path)


def test_learning_curves_tolerate_missing_values(tmp_path):
  rows = [{'epoch': 1, 'train_loss': 0.7, 'train_acc': 0.5},
          {'epoch': 2, 'train_loss': 0.6, 'train_acc': 0.6, 'val_loss': 0.65, 'val_acc': 0.55}]
  assert_valid_png(plots.learning_curves(rows, str(tmp_path / 'curves.png')))
  assert_valid_png(plots.learning_curves(rows, str(tmp_path / 'metric.png'), 2, 'supcon'))


def test_malformed_metrics_line_names_file_and_line(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"epoch": 1}\n{"epoch": 2,\n')
  with pytest.raises(ValueError, match=r'metrics.jsonl:2: expected a JSON object'):
    plots.read_metrics(str(path))


def test_one_shot_and_fold_roc_figures(tmp_path):
  results = [{'num_way': n, 'accuracy': 2 / n, 'ci95': [1.5 / n, 2.5 / n]} for n in (5, 10, 20)]
  assert_valid_png(plots.one_shot_accuracy(results, str(tmp_path / 'oneshot.png')))
  pairs, scores = _scored_pairs()
  fpr, tpr, _ = metrics.roc_curve(scores, pairs.labels)
  assert_valid_png(plots.roc({'average': (fpr, tpr)}, str(tmp_path / 'roc.png'),
                             faint_curves=[(fpr, tpr)], faint_label='folds'))
