"""The evaluation protocols (View 1, View 2 folds, one-shot) on tiny models trained on fake LFW."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import package_env
import eval_workdir
from lfw_siamese import checkpointing
from lfw_siamese import evaluate
from lfw_siamese import inference
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import datasets
from lfw_siamese.data import loading
from lfw_siamese.evaluation import metrics

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import view2_folds  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return eval_workdir.trained_workdir(str(tmp_path_factory.mktemp('evaluate') / 'run'))


def test_view1_chooses_threshold_on_validation_and_writes_json(workdir, capsys):
  assert evaluate.main(['--workdir', workdir, '--protocol', 'view1']) == 0
  table = capsys.readouterr().out
  assert 'test accuracy' in table and 'accuracy at 0.5' in table
  with open(os.path.join(workdir, 'eval_view1.json')) as f:
    result = json.load(f)
  with open(os.path.join(workdir, 'summary.json')) as f:
    summary = json.load(f)
  # Training scored the same validation and test pairs with the same model.
  for key in ('threshold', 'test_acc', 'test_auc', 'test_eer', 'test_acc_at_0_5'):
    assert result[key] == pytest.approx(summary[key], abs=1e-6), key
  scores = np.load(os.path.join(workdir, 'eval_view1_scores.npz'))
  same = scores['test_labels'] == 1
  assert result['test_acc'] == pytest.approx(
      np.mean((scores['test_scores'] >= result['threshold']) == same))
  # The threshold is one that no other cut of the validation scores beats.
  validation, validation_same = scores['val_scores'], scores['val_labels'] == 1
  accuracy_at = lambda cut: np.mean((validation >= cut) == validation_same)
  assert all(accuracy_at(result['threshold']) >= accuracy_at(cut)
             for cut in np.append(np.unique(validation), np.inf))
  assert result['val_pairs'] == len(validation)
  assert 'tar_at_far_caveat' in result and 'test_tar_at_far_1e-2' in result
  for name in ('roc.png', 'scores.png', 'pairs.png', 'learning_curves.png'):
    assert os.path.getsize(os.path.join(workdir, 'figures', name)) > 1000
  report = open(os.path.join(workdir, 'report.md')).read()
  assert 'eval_view1.json' in report and f"{result['test_acc']:.4f}" in report


def test_oneshot_trials_and_json(workdir, capsys):
  assert evaluate.main(['--workdir', workdir, '--protocol', 'oneshot', '--ways', '2,5',
                        '--trials', '300', '--seed', '1']) == 0
  assert 'chance' in capsys.readouterr().out
  with open(os.path.join(workdir, 'eval_oneshot.json')) as f:
    result = json.load(f)
  assert result['split'] == 'view1_test' and result['people'] >= 5
  assert [r['num_way'] for r in result['results']] == [2, 5]
  verifier = inference.load(workdir)
  identities = loading.load_identities(verifier.config.data, 'view1_test')
  people, counts = np.unique(identities.person_ids, return_counts=True)
  keep = np.isin(identities.person_ids, people[counts >= 2])
  images, person_ids = identities.images[keep], identities.person_ids[keep]
  for r in result['results']:
    # Recounted by scoring each trial's images afresh: the query against its N references.
    trials = metrics.one_shot_trials(person_ids, r['num_way'], 300, seed=(1, r['num_way']))
    scores = [verifier.score(images[[trial[0]] * (len(trial) - 1)], images[trial[1:]])
              for trial in trials]
    correct = sum(int(trial_scores[0] > max(trial_scores[1:])) for trial_scores in scores)
    assert r['trials'] == 300 and r['correct'] == correct
    # The 95% interval is about 1.96 standard errors either side.
    p = r['accuracy']
    assert r['ci95'][1] - r['ci95'][0] == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / 300),
                                                        abs=0.01)
  assert os.path.exists(os.path.join(workdir, 'figures', 'oneshot.png'))
  assert 'one-shot' in open(os.path.join(workdir, 'report.md')).read()
  # Same seed, same trials, same numbers.
  first = result['results']
  evaluate.evaluate_one_shot(workdir, ways=(2, 5), trials=300, seed=1)
  with open(os.path.join(workdir, 'eval_oneshot.json')) as f:
    assert json.load(f)['results'] == first


def test_oneshot_with_too_few_people_is_a_one_line_error(workdir, capsys):
  assert evaluate.main(['--workdir', workdir, '--protocol', 'oneshot', '--ways', '500']) == 1
  error = capsys.readouterr().err
  assert '500-way one-shot needs 500 people' in error and error.count('\n') == 1


def test_score_one_shot_puts_the_true_reference_first(workdir):
  verifier = inference.load(workdir)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (6, *verifier.image_shape), dtype=np.uint8)
  trials = np.array([[0, 1, 2, 3], [4, 5, 0, 1]])
  scores = evaluate.score_one_shot(verifier, verifier.embed_for_scoring(images), trials)
  expected = verifier.score(images[[0, 0, 0, 4, 4, 4]], images[[1, 2, 3, 5, 0, 1]])
  np.testing.assert_allclose(scores, expected.reshape(2, 3), atol=1e-6)


def test_fold_threshold_comes_from_the_training_folds_only():
  # On the training folds 0.5 separates perfectly; on the test fold 0.35 would.
  result = evaluate.fold_result([0.2, 0.4, 0.6, 0.8], [0, 0, 1, 1],
                                [0.3, 0.4, 0.45, 0.7], [0, 1, 1, 1])
  assert result['threshold'] == pytest.approx(0.5)
  assert result['test_acc'] == pytest.approx(0.5)  # 0.3 right, 0.4 and 0.45 missed, 0.7 right.
  assert result['train_folds_acc'] == pytest.approx(1.0)
  assert result['test_auc'] == pytest.approx(1.0)


def test_summarize_folds_by_hand():
  perfect = {'fpr': [0.0, 0.0, 1.0], 'tpr': [0.0, 1.0, 1.0]}
  chance = {'fpr': [0.0, 1.0], 'tpr': [0.0, 1.0]}
  fold = lambda acc, auc, eer, acc_at_half, roc: {
      'test_acc': acc, 'test_auc': auc, 'test_eer': eer, 'test_acc_at_0_5': acc_at_half, 'roc': roc}
  folds = [fold(0.7, 1.0, 0.0, 0.6, perfect), fold(0.8, 0.5, 0.5, 0.6, chance),
           fold(0.9, 1.0, 0.1, 0.9, perfect)]
  summary = evaluate.summarize_folds(folds)
  assert summary['mean_acc'] == pytest.approx(0.8)
  assert summary['standard_error'] == pytest.approx(0.1 / np.sqrt(3))
  assert summary['mean_auc'] == pytest.approx(2.5 / 3)
  assert summary['mean_acc_at_0_5'] == pytest.approx(0.7)
  # Vertical average: 2/3 of the way to perfect; its AUC is 2/3 * 1 + 1/3 * 0.5.
  assert summary['averaged_roc_auc'] == pytest.approx(2.5 / 3, abs=1e-3)


def _driver_command(workdir, folds):
  root = eval_workdir.fake_lfw_root()
  script = os.path.join(os.path.dirname(__file__), '..', 'experiments', 'view2_folds.py')
  return [sys.executable, script, f'--workdir={workdir}',
          f"--config={os.path.join(os.path.dirname(evaluate.__file__), 'configs', 'tiny.py')}",
          f"--config.data.lfw_dir={os.path.join(root, 'lfw')}",
          f"--config.data.tfds_dir={os.path.join(root, 'tfds')}",
          f"--config.data.cache_dir={os.path.join(root, 'cache')}",
          '--config.data.validation_fraction=0.25', '--config.num_epochs=1', f'--folds={folds}',
          *FUSED_FLAGS]


# Unrestricted training with the fusion stage, small enough for the fake LFW's folds.
FUSED_FLAGS = ['--config.data.paradigm=unrestricted', '--config.loss=supcon',
               '--config.lbp_fusion.enabled=true', '--config.lbp_fusion.radii=1,2',
               '--config.lbp_fusion.grids=4,2', '--config.lbp_fusion.dims=8',
               '--config.lbp_fusion.metric.steps=10', '--config.lbp_fusion.metric.width=16',
               '--config.lbp_fusion.metric.dims=4', '--config.lbp_fusion.metric.people_per_batch=4']


@pytest.fixture(scope='module')
def view2_workdir(tmp_path_factory):
  """Folds 0 and 1 trained and scored by the driver's command line."""
  workdir = tmp_path_factory.mktemp('view2') / 'run'
  completed = subprocess.run(_driver_command(workdir, '0,1'), capture_output=True, text=True,
                             timeout=300, check=False, env=package_env())
  assert completed.returncode == 0, completed.stderr[-2000:]
  assert 'partial: not all ten folds' in completed.stdout
  return str(workdir)


@pytest.mark.slow
def test_view2_driver_trains_and_scores_folds(view2_workdir):
  for k in (0, 1):
    fold_config = workdir_lib.read_config(workdir_lib.fold_workdir(view2_workdir, k))
    assert fold_config.data.protocol == 'view2' and fold_config.data.fold == k
    assert os.path.exists(os.path.join(workdir_lib.fold_workdir(view2_workdir, k),
                                       workdir_lib.FUSION_STAGE))
  with open(os.path.join(view2_workdir, 'eval_view2.json')) as f:
    result = json.load(f)
  assert [f['fold'] for f in result['folds']] == [0, 1] and result['complete'] is False
  accuracies = [f['test_acc'] for f in result['folds']]
  assert result['mean_acc'] == pytest.approx(np.mean(accuracies))
  assert result['standard_error'] == pytest.approx(np.std(accuracies, ddof=1) / np.sqrt(2))
  assert all(f['test_pairs'] == 20 for f in result['folds'])  # fold_pairs=10 same + 10 different.
  assert os.path.exists(os.path.join(view2_workdir, 'figures', 'roc_view2.png'))
  assert 'partial' in open(os.path.join(view2_workdir, 'report.md')).read()
  again = evaluate.evaluate_view2(view2_workdir, folds=[0, 1])
  assert again['mean_acc'] == pytest.approx(result['mean_acc'], abs=1e-9)


@pytest.mark.slow
def test_each_folds_threshold_comes_from_the_other_nine_folds(view2_workdir):
  with open(os.path.join(view2_workdir, 'eval_view2.json')) as f:
    result = json.load(f)
  for fold in result['folds']:
    k = fold['fold']
    verifier = inference.load(workdir_lib.fold_workdir(view2_workdir, k))  # Fused scores.
    assert verifier.fusion is not None
    other_pairs = datasets.concatenate_pairs(
        [loading.load_pairs(verifier.config.data, f'fold{j}') for j in range(10) if j != k])
    own_pairs = loading.load_pairs(verifier.config.data, f'fold{k}')
    from_others = metrics.best_threshold(verifier.score_pairs(other_pairs), other_pairs.labels)
    from_itself = metrics.best_threshold(verifier.score_pairs(own_pairs), own_pairs.labels)
    assert from_others != from_itself  # So that the check below tells them apart.
    assert fold['threshold'] == pytest.approx(from_others)
    assert fold['test_acc'] == pytest.approx(metrics.accuracy(
        verifier.score_pairs(own_pairs), own_pairs.labels, from_others))


@pytest.mark.slow
def test_view2_driver_resumes_and_refuses_another_config(view2_workdir, capsys):
  config = view2_folds.fold_config(
      workdir_lib.read_config(workdir_lib.fold_workdir(view2_workdir, 0)), 0)

  def must_not_train(*args):
    raise AssertionError(f'fold retrained: {args[1]}')

  view2_folds.train_folds(config, view2_workdir, [0, 1], train_fn=must_not_train)  # Done: skipped.
  os.rename(os.path.join(workdir_lib.fold_workdir(view2_workdir, 1), 'summary.json'),
            os.path.join(view2_workdir, 'summary_1.json'))
  resumed = []
  view2_folds.train_folds(config, view2_workdir, [0, 1], train_fn=lambda c, w: resumed.append(w))
  os.rename(os.path.join(view2_workdir, 'summary_1.json'),
            os.path.join(workdir_lib.fold_workdir(view2_workdir, 1), 'summary.json'))
  assert resumed == [workdir_lib.fold_workdir(view2_workdir, 1)]
  config.learning_rate = 0.5
  with pytest.raises(workdir_lib.WorkdirConflict, match='learning_rate'):
    view2_folds.train_folds(config, view2_workdir, [0], train_fn=must_not_train)
  capsys.readouterr()
  fold_0 = workdir_lib.fold_workdir(view2_workdir, 0)
  assert evaluate.main(['--workdir', fold_0, '--protocol', 'view1']) == 1
  assert "trained with data.protocol 'view2' (fold 0)" in capsys.readouterr().err
  assert evaluate.main(['--workdir', view2_workdir, '--protocol', 'view2']) == 1
  error = capsys.readouterr().err
  assert 'folds [2, 3, 4, 5, 6, 7, 8, 9] are not trained yet' in error


@pytest.mark.slow
def test_view2_driver_rejects_bad_folds(tmp_path):
  completed = subprocess.run(_driver_command(tmp_path / 'run', '0,x'), capture_output=True,
                             text=True, timeout=300, check=False, env=package_env())
  assert completed.returncode == 1 and 'expected fold numbers' in completed.stderr


def test_missing_workdir_is_a_one_line_error(tmp_path, capsys):
  assert evaluate.main(['--workdir', str(tmp_path / 'nowhere'), '--protocol', 'view1']) == 1
  error = capsys.readouterr().err
  assert 'nowhere' in error and error.count('\n') == 1


def test_untrained_workdir_is_a_one_line_error(tmp_path, capsys):
  workdir = str(tmp_path / 'fresh')
  workdir_lib.prepare(workdir, eval_workdir.tiny_config(str(tmp_path)), restart=False)
  assert evaluate.main(['--workdir', workdir, '--protocol', 'oneshot']) == 1
  error = capsys.readouterr().err
  assert 'no checkpoint yet' in error and error.count('\n') == 1


@pytest.mark.slow
def test_real_lfw_protocol_sizes(tmp_path):
  """With real LFW: View 1 scores 1,000 test pairs; one-shot uses the 496 View 1 test people."""
  if not os.environ.get('LFW_DIR'):
    pytest.skip('LFW_DIR is unset: point it at an extracted LFW to run this test')
  import jax  # pylint: disable=g-import-not-at-top
  from lfw_siamese.configs import tiny  # pylint: disable=g-import-not-at-top
  from lfw_siamese.model import networks  # pylint: disable=g-import-not-at-top
  # A hand-built workdir (untrained parameters): this checks the protocols' data, not the model.
  config = tiny.get_config()
  workdir = str(tmp_path / 'real')
  workdir_lib.prepare(workdir, config, restart=False)
  params = networks.init(networks.build(config.model), jax.random.key(0), (32, 32, 1))
  checkpoints = checkpointing.Checkpoints(workdir)
  checkpoints.save_best(1, params, {'epoch': 1, 'val_acc': 0.5})
  checkpoints.close()
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'threshold': 0.5, 'best_epoch': 1}, f)
  view1 = evaluate.evaluate_view1(workdir)
  assert view1['test_pairs'] == 1000 and view1['test_different_pairs'] == 500
  assert view1['val_pairs'] == 55  # 2.5% of pairsDevTrain's 2,200.
  one_shot = evaluate.evaluate_one_shot(workdir, ways=(5,), trials=100)
  assert (one_shot['people'], one_shot['images']) == (496, 2493)  # peopleDevTest.txt, counts >= 2.
