"""The LBP descriptor, the score fusion, and the fusion stage in training, inference and its CLI."""

import dataclasses
import json
import os
import shutil

import ml_collections
import numpy as np
import pytest

import eval_workdir
import fake_lfw
import train_fakes
from lfw_siamese import config_check
from lfw_siamese import embed
from lfw_siamese import evaluate
from lfw_siamese import inference
from lfw_siamese import refit_fusion
from lfw_siamese import train
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.classic import fusion
from lfw_siamese.classic import lbp
from lfw_siamese.configs import base
from lfw_siamese.evaluation import metrics
from lfw_siamese.model import networks


def test_uniform_patterns_get_58_bins_and_the_rest_one():
  assert lbp.BINS == 59
  uniform = [code for code in range(256) if lbp.UNIFORM_TABLE[code] < 58]
  assert len(uniform) == 58 and {0, 255, 0b00011100, 0b10000001} <= set(uniform)
  assert lbp.UNIFORM_TABLE[0b01010101] == lbp.UNIFORM_TABLE[0b00100101] == 58


def test_pattern_codes_by_hand():
  peak = np.zeros((1, 5, 5), np.float32)
  peak[0, 2, 2] = 1.0  # Brighter than every neighbour: no bit set.
  assert lbp.pattern_codes(peak, 1)[0, 1, 1] == lbp.UNIFORM_TABLE[0]
  flat = np.full((1, 5, 5), 0.3, np.float32)  # Ties count as "not darker": every bit set.
  assert (lbp.pattern_codes(flat, 2) == lbp.UNIFORM_TABLE[255]).all()
  # A vertical edge through the centre (0 left, 0.5 on the centre column, 1 right). Neighbour k
  # sits at angle 45k degrees counter-clockwise from east: east, north-east, north, south and
  # south-east reach the centre's 0.5 (bits 0, 1, 2, 6, 7); the three to the west do not.
  edge = np.zeros((1, 5, 5), np.float32)
  edge[0, :, 2], edge[0, :, 3:] = 0.5, 1.0
  assert lbp.pattern_codes(edge, 1)[0, 1, 1] == lbp.UNIFORM_TABLE[0b11000111]


def test_histograms_are_unit_per_radius_and_scale_free():
  images = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 1), dtype=np.uint8)
  features, coarse = lbp.histograms(images, radii=(1, 2), grids=(3, 1))
  assert features.shape == (3, 2 * 9 * 59) and features.dtype == np.float32
  per_radius = (features ** 2).reshape(3, 2, -1).sum(axis=2)
  np.testing.assert_allclose(per_radius, 1.0, rtol=1e-5)  # Square roots of frequencies.
  np.testing.assert_allclose(lbp.histograms(images / 255.0, radii=(1, 2), grids=(3,))[0],
                             features)
  # One cell holds the whole image: the sum of the 3x3 grid's cells' counts.
  counts = (features.reshape(3, 2, 9, 59) ** 2).sum(axis=2)
  np.testing.assert_allclose(coarse.reshape(3, 2, 59) ** 2, counts, rtol=1e-4, atol=1e-6)
  mirrored = lbp.mirrored_histograms(images, radii=(1, 2), grids=(3,))[0]
  np.testing.assert_allclose(lbp.mirrored_histograms(images[:, :, ::-1], radii=(1, 2),
                                                     grids=(3,))[0], mirrored, rtol=1e-6)
  assert not np.allclose(mirrored, features)


def test_fit_whitens_within_person_and_separates_unseen_photos():
  people = train_fakes.identity_set(40, 6, seed=0)
  fitting = np.arange(people.person_ids.size) % 6 < 4  # Four photos a person to learn from.
  descriptor, = lbp.fit(people.images[fitting], people.person_ids[fitting], radii=(1, 2),
                        grids=(4,), dims=24)
  assert descriptor.projection.shape == (2 * 16 * 59, 24)
  projected = (lbp.mirrored_histograms(people.images[fitting], radii=(1, 2), grids=(4,))[0]
               - descriptor.mean) @ descriptor.projection
  ids = people.person_ids[fitting]
  means = np.stack([projected[ids == p].mean(axis=0) for p in range(40)])
  within = projected - means[ids]
  np.testing.assert_allclose(within.T @ within / len(within), np.eye(24), atol=1e-3)
  # The two held-out photos of each person against each other and against the next person's.
  unseen = descriptor.embed(people.images[~fitting]).reshape(40, 2, 24)
  same = np.sum(unseen[:, 0] * unseen[:, 1], axis=1)
  different = np.sum(unseen[:, 0] * np.roll(unseen[:, 1], 1, axis=0), axis=1)
  scores = np.concatenate([same, different])
  assert metrics.roc_auc(scores, np.repeat([1, 0], 40)) > 0.95


def test_fit_needs_two_people_with_two_images():
  images = np.zeros((3, 16, 16, 1), np.uint8)
  with pytest.raises(ValueError, match='two or more people with two or more images'):
    lbp.fit(images, np.array([0, 0, 1]), radii=(1,), grids=(2,), dims=4)


def test_fusion_fit_recovers_weights_whatever_the_scale_and_is_calibrated():
  rng = np.random.default_rng(0)
  scores = np.stack([rng.normal(0, 1, 40000), rng.normal(0, 0.01, 40000)], axis=1)
  true = np.array([2.0, 150.0, -0.5])  # The second score is tiny but weighs as much.
  labels = (rng.uniform(size=40000) < 1 / (1 + np.exp(-(scores @ true[:2] + true[2])))).astype(int)
  weights = fusion.fit(scores, labels)
  np.testing.assert_allclose(weights, true, rtol=0.1, atol=0.05)
  # With the bias unpenalised, the mean probability equals the share of positives.
  assert fusion.probabilities(weights, scores).mean() == pytest.approx(labels.mean(), abs=1e-4)


def test_fusion_fit_refuses_one_class_and_bad_shapes():
  with pytest.raises(ValueError, match='both same and different pairs'):
    fusion.fit(np.zeros((4, 2)), np.ones(4))
  with pytest.raises(ValueError, match=r'expected scores \(N, F\) and labels \(N,\)'):
    fusion.fit(np.zeros(4), np.ones(4))


SMALL_LBP = {'lbp_fusion.enabled': True, 'lbp_fusion.radii': (1, 2), 'lbp_fusion.grids': (4, 2),
             'lbp_fusion.dims': 32, 'lbp_fusion.metric.steps': 40, 'lbp_fusion.metric.width': 32,
             'lbp_fusion.metric.dims': 8}


@pytest.fixture(scope='module')
def fused_run(tmp_path_factory):
  config = train_fakes.tiny_config(**{'loss': 'supcon', 'data.paradigm': 'unrestricted',
                                      'num_epochs': 4, **SMALL_LBP})
  data = train_fakes.identity_training_data()
  workdir = str(tmp_path_factory.mktemp('fused'))
  return workdir, config, data, train.train_and_evaluate(config, workdir, data=data)


@pytest.mark.slow
def test_training_adds_the_stage_and_reports_both_scores(fused_run):
  workdir, _, _, summary = fused_run
  assert os.path.exists(os.path.join(workdir, workdir_lib.FUSION_STAGE))
  for name in ('test_acc', 'test_auc', 'threshold'):
    assert 0 <= summary[name] <= 1 and 0 <= summary[f'cnn_only_{name}'] <= 1
  assert 0 <= summary['lbp_only_threshold'] <= 1 and summary['lbp_only_test_auc'] > 0.5
  assert all(summary[f'fusion_weight_{name}'] != 0
             for name in ('cnn_logit', 'lbp_grid4', 'lbp_grid2', 'lbp_metric'))
  with open(os.path.join(workdir, 'summary.json')) as f:
    assert json.load(f)['test_acc'] == summary['test_acc']
  assert os.path.getsize(os.path.join(workdir, 'figures', 'fusion.png')) > 0


@pytest.mark.slow
def test_loaded_verifier_scores_as_training_did(fused_run):
  workdir, config, data, summary = fused_run
  verifier = inference.load(workdir)
  assert verifier.fusion is not None and verifier.threshold == summary['threshold']
  fused = verifier.score_pairs(data.test)
  assert metrics.accuracy(fused, data.test.labels, verifier.threshold) == summary['test_acc']
  cnn = inference.load(workdir, with_fusion=False)
  assert cnn.fusion is None and cnn.threshold == summary['cnn_only_threshold']
  expected = train.network_probabilities(networks.build(config.model), cnn.params, data.test,
                                         config)
  np.testing.assert_allclose(cnn.score_pairs(data.test), expected, atol=1e-5)
  # Embedding once and scoring row subsets (one-shot, verify_many) gives the same scores.
  embedded_a = verifier.embed_for_scoring(data.test.images[:, 0])
  embedded_b = verifier.embed_for_scoring(data.test.images[:, 1])
  rows = np.array([5, 0, 3])
  np.testing.assert_allclose(
      verifier.score_embedded(verifier.take(embedded_a, rows), verifier.take(embedded_b, rows)),
      fused[rows], rtol=1e-5)


@pytest.mark.slow
def test_stage_scores_each_descriptor_apart_and_survives_saving(fused_run, tmp_path):
  workdir, _, data, _ = fused_run
  stage = fusion.load(workdir)
  assert [d.grid for d in stage.descriptors] == [4, 2] and stage.weights.shape == (5,)
  images = data.test.images[:5]
  a, b = stage.embed(images[:, 0]), stage.embed(images[:, 1])
  expected = np.stack([np.sum(d.embed(images[:, 0]) * d.embed(images[:, 1]), axis=1)
                       for d in stage.descriptors]  # Each descriptor on its own,
                      + [stage.metric.cosines(a, b)], axis=1)  # then the learned metric.
  np.testing.assert_allclose(stage.cosines(a, b), expected, rtol=1e-5, atol=1e-6)
  metric_a = stage.metric.embed(a)
  np.testing.assert_allclose(np.linalg.norm(metric_a, axis=1), 1, rtol=1e-5)
  stage.save(str(tmp_path))
  again = fusion.load(str(tmp_path))
  np.testing.assert_array_equal(again.weights, stage.weights)
  np.testing.assert_array_equal(again.embed(images[:, 0]), a)
  np.testing.assert_array_equal(again.metric.embed(a), metric_a)
  # A stage without the metric (as saved before it existed) saves and loads as such.
  plain = dataclasses.replace(stage, weights=stage.weights[[0, 1, 2, 4]], metric=None)
  plain.save(str(tmp_path))
  again = fusion.load(str(tmp_path))
  assert again.metric is None and again.cosines(a, b).shape == (5, 2)
  np.savez(os.path.join(tmp_path, workdir_lib.FUSION_STAGE), fusion_weights=stage.weights,
           **{f'd{i}_{name}': array for i, descriptor in enumerate(stage.descriptors)
              for name, array in descriptor.arrays().items()})
  with pytest.raises(ValueError, match=r'2 descriptors and weights of shape \(5,\)'):
    fusion.load(str(tmp_path))  # Weights for a metric the file lacks.


@pytest.mark.slow
def test_stage_in_the_single_descriptor_layout_still_loads(fused_run, tmp_path):
  workdir, _, data, _ = fused_run
  first = fusion.load(workdir).descriptors[0]
  weights = np.array([1.5, 20.0, -0.3])
  np.savez(os.path.join(tmp_path, workdir_lib.FUSION_STAGE), fusion_weights=weights,
           **first.arrays())
  old = fusion.load(str(tmp_path))
  assert len(old.descriptors) == 1 and old.descriptors[0].grid == first.grid
  images = data.test.images[:4]
  cosine = np.sum(first.embed(images[:, 0]) * first.embed(images[:, 1]), axis=1)
  cnn = np.full(4, 0.7)
  np.testing.assert_allclose(
      old.score(cnn, old.embed(images[:, 0]), old.embed(images[:, 1])),
      fusion.probabilities(weights, np.stack([fusion.logit(cnn), cosine], axis=1)), rtol=1e-5)


def test_fusion_needs_the_unrestricted_paradigm():
  config = train_fakes.tiny_config(**SMALL_LBP)
  with pytest.raises(config_check.ConfigError,
                     match=r"config\.lbp_fusion\.enabled: .*unrestricted"):
    config_check.validate(config)
  config = train_fakes.tiny_config(**{**SMALL_LBP, 'data.paradigm': 'unrestricted',
                                      'loss': 'supcon', 'lbp_fusion.radii': (1, 9)})
  with pytest.raises(config_check.ConfigError, match=r'config\.lbp_fusion\.radii: expected '
                                                       r'integers from 1 to 8 .*got \(1, 9\)'):
    config_check.validate(config)
  with pytest.raises(ValueError, match='lbp_fusion.dims: expected an integer of 2 or more'):
    config_check.check_lbp_fusion(
        ml_collections.ConfigDict({'radii': (1,), 'grids': (4,), 'dims': 1}), 32)
  for field, value, message in (('steps', -1, 'an integer of 0 or more'),
                                ('people_per_batch', 1, 'an integer of 2 or more'),
                                ('dropout', 1.0, r'a number in \[0, 1\)'),
                                ('temperature', 0, 'a positive number')):
    settings = base.get_config().lbp_fusion
    settings.metric[field] = value
    with pytest.raises(ValueError, match=rf'lbp_fusion.metric.{field}: expected {message}'):
      config_check.check_lbp_fusion(settings, 32)
  for grids in ((4, 4), (), 4, (17,)):
    settings = ml_collections.ConfigDict({'radii': (1,), 'grids': grids, 'dims': 8})
    with pytest.raises(ValueError, match='lbp_fusion.grids: expected distinct integers from 1 to'):
      config_check.check_lbp_fusion(settings, 32)


@pytest.fixture(scope='module')
def _trained_unrestricted(tmp_path_factory):
  root = eval_workdir.fake_lfw_root()
  config = eval_workdir.tiny_config(root)
  config.data.paradigm, config.loss, config.num_epochs = 'unrestricted', 'supcon', 3
  workdir = str(tmp_path_factory.mktemp('cli') / 'run')
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture
def unrestricted_workdir(_trained_unrestricted, tmp_path):
  """A copy of its own, for each test, of the tiny config trained unrestricted (supervised
  contrastive) on the fake LFW's files, with no fusion stage."""
  return shutil.copytree(_trained_unrestricted, str(tmp_path / 'unrestricted'))


@pytest.mark.slow
def test_cli_adds_the_stage_to_a_trained_workdir(unrestricted_workdir, capsys):
  with open(os.path.join(unrestricted_workdir, 'summary.json')) as f:
    before = json.load(f)
  # Fitted twice, the second time with fewer grids: nothing of the first stage stays.
  for grids, metric_steps in (('4,2', '30'), ('4', '0')):
    assert refit_fusion.main(['--workdir', unrestricted_workdir, '--radii', '1,2', '--grids',
                              grids, '--dims', '16', '--metric-steps', metric_steps]) == 0
  assert 'CNN alone' in capsys.readouterr().out
  with open(os.path.join(unrestricted_workdir, 'summary.json')) as f:
    after = json.load(f)
  assert after['cnn_only_test_acc'] == pytest.approx(before['test_acc'], abs=1e-6)
  assert after['val_acc'] == before['val_acc']  # The best epoch's, as training writes it.
  assert after['config']['lbp_fusion']['dims'] == 16
  assert [name for name in after if name.startswith('fusion_weight_lbp')] == [
      'fusion_weight_lbp_grid4']
  with open(os.path.join(unrestricted_workdir, 'report.md')) as f:
    assert 'figures/fusion.png' in f.read()
  # The evaluation command scores with the stage, and agrees with what the CLI reported.
  result = evaluate.evaluate_view1(unrestricted_workdir)
  assert result['test_acc'] == pytest.approx(after['test_acc'])
  assert result['threshold'] == pytest.approx(after['threshold'])
  # --cnn-only scores the network alone, into a file of its own.
  assert evaluate.main(
      ['--workdir', unrestricted_workdir, '--protocol', 'view1', '--cnn-only']) == 0
  assert 'eval_view1_cnn_only.json' in capsys.readouterr().out
  with open(workdir_lib.result_path(unrestricted_workdir, 'view1', with_fusion=False)) as f:
    alone = json.load(f)
  assert alone['test_acc'] == pytest.approx(after['cnn_only_test_acc'])
  with open(workdir_lib.result_path(unrestricted_workdir, 'view1')) as f:
    assert json.load(f)['test_acc'] == pytest.approx(after['test_acc'])  # Untouched.


@pytest.mark.slow
def test_verify_and_embed_use_the_stage(unrestricted_workdir, tmp_path):
  assert not os.path.exists(os.path.join(unrestricted_workdir, workdir_lib.FUSION_STAGE))
  refit_fusion.add_to_workdir(unrestricted_workdir, base.get_config().lbp_fusion)
  paths, faces = [], tmp_path / 'faces'
  faces.mkdir()
  for name, (person, number) in {'a1': (0, 1), 'a2': (0, 2), 'b1': (3, 1)}.items():
    paths.append(str(faces / f'{name}.png'))
    fake_lfw.face_image(person, number).save(paths[-1])
  verifier = inference.load(unrestricted_workdir, framing=inference.Framing(detect=False))
  images = np.stack([verifier.load_image(path) for path in paths])
  stage = fusion.load(unrestricted_workdir)
  alone = inference.load(unrestricted_workdir, with_fusion=False).score(images[[0, 0]], images[1:])
  expected = stage.score(alone, stage.embed(images[[0, 0]]), stage.embed(images[1:]))
  np.testing.assert_allclose(verifier.verify_many([(paths[0], paths[1]), (paths[0], paths[2])]),
                             expected, rtol=1e-5)
  exported = embed.embed_folder(verifier, str(faces))
  dims = [d.projection.shape[1] for d in stage.descriptors]
  assert exported['lbp_descriptors'].shape == (3, sum(dims))
  for part in np.split(exported['lbp_descriptors'], np.cumsum(dims)[:-1], axis=1):
    np.testing.assert_allclose(np.linalg.norm(part, axis=1), 1, rtol=1e-5)


def test_cli_errors_are_one_line(tmp_path, capsys):
  restricted = eval_workdir.trained_workdir(str(tmp_path / 'restricted'))
  assert refit_fusion.main(['--workdir', restricted]) == 1
  assert 'unrestricted paradigm only' in capsys.readouterr().err
  assert refit_fusion.main(['--workdir', str(tmp_path / 'missing')]) == 1
  assert 'summary.json: no such file' in capsys.readouterr().err
  assert refit_fusion.main(['--workdir', restricted, '--radii', 'one']) == 2
  assert "--radii: expected comma-separated integers, got 'one'" in capsys.readouterr().err
  assert refit_fusion.main(['--workdir', restricted, '--grids', '10,x']) == 2
  assert "--grids: expected comma-separated integers, got '10,x'" in capsys.readouterr().err


def test_unreadable_stage_is_named(tmp_path):
  workdir = eval_workdir.trained_workdir(str(tmp_path / 'run'))
  with open(os.path.join(workdir, workdir_lib.FUSION_STAGE), 'wb') as f:
    f.write(b'not an npz')
  with pytest.raises(ValueError, match=f'{workdir_lib.FUSION_STAGE}: not a fusion stage'):
    inference.load(workdir)


@pytest.mark.slow
def test_cli_missing_data_is_one_line(unrestricted_workdir, tmp_path, capsys):
  moved = unrestricted_workdir
  config_path = os.path.join(moved, 'config.json')
  with open(config_path) as f:
    config = json.load(f)
  config['data'].update(lfw_dir=str(tmp_path / 'no_lfw'), tfds_dir=str(tmp_path / 'no_tfds'),
                        cache_dir=str(tmp_path / 'no_cache'))
  with open(config_path, 'w') as f:
    json.dump(config, f)
  assert refit_fusion.main(['--workdir', moved]) == 1
  error = capsys.readouterr().err
  assert error.startswith('error: No LFW data') and error.count('\n') == 1


def test_a_workdir_from_before_grids_resumes_without_a_conflict():
  new = workdir_lib.config_dict(base.get_config())
  old = json.loads(json.dumps(new))
  old['lbp_fusion'] = {'enabled': True, 'radii': [1, 2, 3], 'grid': 10, 'dims': 800}
  assert workdir_lib.config_differences(old, new) == []


@pytest.fixture
def experiments_path(monkeypatch):
  """experiments/ importable (it is not a package)."""
  monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), '..', 'experiments'))


@pytest.mark.slow
def test_fusion_candidates_experiment_tables_each_candidate(unrestricted_workdir, tmp_path,
                                                            experiments_path):
  import fusion_candidates  # pylint: disable=g-import-not-at-top
  output = tmp_path / 'table.md'
  fusion_candidates.main(['--workdir', unrestricted_workdir, '--only', 'lbp6', 'hog8',
                          '--output', str(output)])
  names = [row.split(' | ')[0] for row in output.read_text().splitlines()[2:]]
  assert names == ['| network + lbp10', '| network + lbp10 + lbp6', '| network + lbp10 + hog8',
                   '| network + lbp10 + lbp6 + hog8', '| lbp10 alone', '| lbp6 alone',
                   '| hog8 alone']


@pytest.mark.slow
def test_the_fusion_is_fitted_on_validation_pairs_alone(fused_run):
  _, config, data, _ = fused_run
  rng = np.random.default_rng(0)
  validation_cnn = rng.uniform(0.2, 0.8, len(data.validation))
  test_cnn = rng.uniform(0.2, 0.8, len(data.test))
  stage, _, _ = fusion.fit_lbp_fusion(config.lbp_fusion, data, validation_cnn, test_cnn)
  # Other test pairs, other labels and other network scores for them: the same stage.
  other_test = dataclasses.replace(data.test, images=data.test.images[::-1],
                                   labels=1 - data.test.labels)
  other = dataclasses.replace(data, test=other_test)
  again, report, _ = fusion.fit_lbp_fusion(config.lbp_fusion, other, validation_cnn,
                                           rng.uniform(0.2, 0.8, len(data.test)))
  np.testing.assert_array_equal(again.weights, stage.weights)
  for a, b in zip(again.descriptors, stage.descriptors):
    np.testing.assert_array_equal(a.projection, b.projection)
  # While other validation labels give another fit.
  other_validation = dataclasses.replace(data.validation, labels=1 - data.validation.labels)
  flipped, _, _ = fusion.fit_lbp_fusion(
      config.lbp_fusion, dataclasses.replace(data, validation=other_validation), validation_cnn,
      test_cnn)
  assert not np.allclose(flipped.weights, stage.weights)
  assert 0 <= report['test_acc'] <= 1
