"""The training loop on fake separable data: shapes, learning, files, restore, resume, errors."""

import dataclasses
import functools
import importlib
import json
import pathlib
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train_fakes
from lfw_siamese import checkpointing
from lfw_siamese import config_check
from lfw_siamese import configs
from lfw_siamese import scoring
from lfw_siamese import train
from lfw_siamese import train_step
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import images as images_lib
from lfw_siamese.evaluation import metrics
from lfw_siamese.model import networks

SUMMARY_KEYS = ('best_epoch', 'val_acc', 'test_acc_at_0_5', 'test_acc', 'threshold', 'test_auc',
                'train_seconds', 'config')
EPOCH_KEYS = ('epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc')


@pytest.fixture(scope='module')
def data():
  return train_fakes.training_data()


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = train_fakes.tiny_config(num_epochs=3)
  return workdir, config, train.train_and_evaluate(config, workdir, data=data)


def _history(workdir):
  lines = pathlib.Path(workdir, 'metrics.jsonl').read_text().splitlines()
  return [json.loads(line) for line in lines]


def test_train_step_keeps_shapes_and_counts_steps(data):
  config = train_fakes.tiny_config()
  model = networks.build(config.model)
  tx = train_step.make_optimizer(config, steps_per_epoch=16)
  state = jax.jit(functools.partial(train_step.create_state, model, tx, (32, 32, 1)))(
      jax.random.key(0))
  batch = next(iter(train.epoch_batches(data.train, config, 0)))
  assert batch['images'].shape == (16, 2, 32, 32, 1) and batch['labels'].shape == (16,)
  step = jax.jit(train_step.make_train_step(model, tx, config))
  new_state, step_metrics = step(state, batch, jax.random.key(1))
  assert int(new_state.step) == 1 and float(new_state.sums['steps']) == 1.0
  assert {name: value.shape for name, value in step_metrics.items()} == {
      'loss': (), 'accuracy': (), 'l2': ()}
  assert jax.tree.map(jnp.shape, new_state.params) == jax.tree.map(jnp.shape, state.params)
  assert not np.array_equal(new_state.params['encoder']['conv0']['kernel'],
                            state.params['encoder']['conv0']['kernel'])


def test_l2_penalty_sums_squared_encoder_kernels_only():
  params = {'encoder': {'conv0': {'kernel': jnp.full((2, 2), 2.0), 'bias': jnp.ones(3)},
                        'dense': {'kernel': jnp.ones((3,)), 'bias': jnp.ones(1)}},
            'head': {'weights': {'kernel': jnp.full((4,), 10.0)}}}
  assert float(train_step.l2_penalty(params)) == 4 * 4.0 + 3.0


def test_learning_rate_schedules():
  config = train_fakes.tiny_config(learning_rate=1.0, num_epochs=4, lr_schedule='exponential',
                                   lr_decay_per_epoch=0.5)
  schedule = train_step.learning_rate_schedule(config, steps_per_epoch=10)
  assert [float(schedule(step)) for step in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
  config.lr_schedule = 'cosine'
  schedule = train_step.learning_rate_schedule(config, steps_per_epoch=10)
  assert float(schedule(0)) == 1.0 and float(schedule(20)) == pytest.approx(0.5)
  assert float(schedule(40)) == pytest.approx(0.0)


def test_loss_falls_and_run_files_are_written(trained):
  workdir, _, summary = trained
  history = _history(workdir)
  assert [record['epoch'] for record in history] == [1, 2, 3]
  assert all(key in record for key in EPOCH_KEYS for record in history)
  assert history[-1]['train_loss'] < history[0]['train_loss'] - 0.1
  assert max(record['val_acc'] for record in history) >= 0.9
  assert all(key in summary for key in SUMMARY_KEYS)
  assert summary == json.loads(pathlib.Path(workdir, 'summary.json').read_text())
  assert summary['test_acc'] >= 0.85 and summary['test_auc'] >= 0.9
  assert history[summary['best_epoch'] - 1]['val_acc'] == summary['val_acc']
  assert list(pathlib.Path(workdir, 'tensorboard').glob('events.out.tfevents.*'))
  assert json.loads(pathlib.Path(workdir, 'config.json').read_text())['num_epochs'] == 3


@pytest.mark.parametrize('best_epoch_by, pick', [('val_acc', max), ('val_loss', min)])
def test_best_epoch_is_the_first_best_by_the_chosen_metric(best_epoch_by, pick):
  history = [{'val_acc': 0.6, 'val_loss': 0.5}, {'val_acc': 0.7, 'val_loss': 0.6},
             {'val_acc': 0.7, 'val_loss': 0.4}, {'val_acc': 0.5, 'val_loss': 0.4}]
  progress = {'best_epoch': 0, 'history': []}
  for epoch, record in enumerate(history, start=1):
    progress['history'].append(record)
    if train._is_better(record, progress, best_epoch_by):  # pylint: disable=protected-access
      progress['best_epoch'] = epoch
  values = [record[best_epoch_by] for record in history]
  expected = 3 if best_epoch_by == 'val_loss' else 2
  assert progress['best_epoch'] == values.index(pick(values)) + 1 == expected


def test_restored_best_params_give_identical_scores(trained, data):
  workdir, config, summary = trained
  restored_config, params = checkpointing.load_best(workdir)
  assert restored_config.to_dict() == workdir_lib.config_dict(config)
  model = networks.build(restored_config.model)
  validation = train.network_probabilities(model, params, data.validation, restored_config)
  test = train.network_probabilities(model, params, data.test, restored_config, batch_size=24)
  report = metrics.verification_report(validation, data.validation.labels, test, data.test.labels)
  for name in ('threshold', 'test_acc', 'test_acc_at_0_5', 'test_auc'):
    assert report[name] == summary[name]


def test_flip_averaging_is_invariant_to_mirroring_both_images(trained, data):
  workdir, _, _ = trained
  config, params = checkpointing.load_best(workdir)
  config.tta_flip = True
  model = networks.build(config.model)
  mirrored = dataclasses.replace(data.test, images=data.test.images[:, :, :, ::-1])
  averaged = train.network_probabilities(model, params, data.test, config)
  np.testing.assert_allclose(train.network_probabilities(model, params, mirrored, config),
                             averaged, rtol=1e-5, atol=1e-6)
  config.tta_flip = False
  plain = train.network_probabilities(model, params, data.test, config)
  plain_mirrored = train.network_probabilities(model, params, mirrored, config)
  assert not np.allclose(plain, plain_mirrored, atol=1e-4)  # So the invariance is TTA's doing.


def test_distinct_images_are_embedded_once_and_scored_as_each_pair(trained, data):
  workdir, _, _ = trained
  config, params = checkpointing.load_best(workdir)
  model = networks.build(config.model)
  images = data.test.images
  # Pairs that reuse images, in both positions, as validation pairs drawn among people do.
  pairs = np.concatenate([images, images[::-1, ::-1], images[:5]])
  distinct, rows = scoring.distinct_images(pairs)
  assert len(distinct) == 2 * len(images) and rows.shape == (len(pairs), 2)
  np.testing.assert_array_equal(distinct[rows], pairs)
  reused = dataclasses.replace(data.test, images=pairs)
  unit = pairs.astype(np.float32) / 255
  for tta_flip in (False, True):
    config.tta_flip = tta_flip
    if tta_flip:  # Each side plain and mirrored: the mean over the four combinations.
      views = [networks.embed_pairs(model, params, unit),
               networks.embed_pairs(model, params, unit[..., ::-1, :])]
      expected = np.mean([jax.nn.sigmoid(networks.score_embeddings(model, params, a[:, 0], b[:, 1]))
                          for a in views for b in views], axis=0)
    else:
      expected = networks.pair_probabilities(model, params, unit)
    np.testing.assert_allclose(train.network_probabilities(model, params, reused, config,
                                                           batch_size=24),
                               expected, rtol=1e-5, atol=1e-6)
  assert train.network_probabilities(model, params, data.test.take([]), config).shape == (0,)


def test_rerun_of_a_finished_run_resumes_without_training(trained, data):
  workdir, config, summary = trained
  before = pathlib.Path(workdir, 'metrics.jsonl').read_text()
  again = train.train_and_evaluate(config, workdir, data=data)
  assert pathlib.Path(workdir, 'metrics.jsonl').read_text() == before
  assert again['train_seconds'] == summary['train_seconds']
  assert again['test_acc'] == summary['test_acc']


def test_changed_config_is_refused_unless_restarting(trained, data):
  workdir, config, _ = trained
  changed = train_fakes.tiny_config(num_epochs=3, learning_rate=1e-2)
  with pytest.raises(workdir_lib.WorkdirConflict,
                     match=r'learning_rate: 0\.003 -> 0\.01.*--restart'):
    train.train_and_evaluate(changed, workdir, data=data)
  moved = train_fakes.tiny_config(num_epochs=3, **{'data.lfw_dir': '/elsewhere'})
  assert workdir_lib.config_differences(workdir_lib.config_dict(config),
                                          workdir_lib.config_dict(moved)) == []


def test_fields_added_since_a_workdir_was_written_count_as_their_defaults():
  written = workdir_lib.config_dict(train_fakes.tiny_config())
  del written['temperature'], written['data']['singles_per_batch']  # Written before they existed.
  current = workdir_lib.config_dict(train_fakes.tiny_config())
  assert workdir_lib.config_differences(written, current) == []
  warmer = workdir_lib.config_dict(train_fakes.tiny_config(temperature=0.2))
  assert workdir_lib.config_differences(written, warmer) == ['temperature: 0.1 -> 0.2']


@pytest.mark.parametrize('overrides, message', [
    ({'loss': 'hinge'},
     r"config\.loss: expected one of \('bce', 'contrastive', 'triplet', 'supcon'\)"),
    ({'batch_size': 0}, r'config\.batch_size: expected a value in \(0, inf\), got 0'),
    ({'model.dropout': 1.0}, r'config\.model\.dropout: expected a value in \[0\.0, 1\.0\)'),
    ({'loss': 'triplet'}, r"config\.loss: 'triplet' .*data\.paradigm='unrestricted'"),
    ({'loss': 'supcon', 'data.paradigm': 'unrestricted', 'data.images_per_person': 3},
     r'config\.batch_size: 16 less data\.singles_per_batch 0 is not a positive multiple of '
     r'data\.images_per_person 3'),
    ({'model.conv_kernels': (3,)}, r'config\.model\.conv_kernels has 1 entries'),
    ({'data.fold': 10}, r'config\.data\.fold: expected a value in \[0, 9\], got 10'),
])
def test_bad_config_values_get_a_message_naming_the_field(overrides, message):
  config = train_fakes.tiny_config()
  config.unlock()
  config.update_from_flattened_dict(overrides)
  with pytest.raises(config_check.ConfigError, match=message):
    config_check.validate(config)


def test_every_shipped_config_validates():
  names = [module.name for module in pkgutil.iter_modules(configs.__path__)]
  assert {'seed', 'koch2015', 'tiny', 'default'} <= set(names)
  for name in names:
    config_check.validate(importlib.import_module(f'lfw_siamese.configs.{name}').get_config())


def test_batch_larger_than_the_training_set_is_refused(tmp_path, data):
  with pytest.raises(config_check.ConfigError, match='config.batch_size: 512 is larger'):
    train.train_and_evaluate(train_fakes.tiny_config(batch_size=512), str(tmp_path), data=data)


@pytest.mark.slow
@pytest.mark.parametrize('loss, epochs, min_val_acc',
                         [('triplet', 4, 0.7), ('contrastive', 4, 0.7), ('supcon', 8, 0.7)])
def test_metric_losses_learn_and_keep_the_head_calibrated(tmp_path, loss, epochs, min_val_acc):
  config = train_fakes.tiny_config(**{'loss': loss, 'data.paradigm': 'unrestricted',
                                      'margin': 0.5, 'num_epochs': epochs})
  summary = train.train_and_evaluate(config, str(tmp_path),
                                     data=train_fakes.identity_training_data())
  history = _history(tmp_path)
  assert history[-1]['train_loss'] < history[0]['train_loss']
  assert summary['val_acc'] >= min_val_acc  # Accuracy at probability 0.5: a calibrated head.


@pytest.mark.slow
def test_cosface_term_trains_proxies_that_the_saved_model_leaves_out(tmp_path):
  config = train_fakes.tiny_config(**{'loss': 'supcon', 'data.paradigm': 'unrestricted',
                                      'cosface.weight': 1.0, 'num_epochs': 4})
  data = train_fakes.identity_training_data()
  summary = train.train_and_evaluate(config, str(tmp_path), data=data)
  history = _history(tmp_path)
  assert history[-1]['train_loss'] < history[0]['train_loss']
  assert summary['val_acc'] >= 0.7
  checkpoints = checkpointing.Checkpoints(str(tmp_path))
  state, _ = checkpoints.restore_latest()
  assert state['params'][train_step.PROXIES].shape == (data.train.num_people,
                                                  config.model.dense_units)
  best, _ = checkpoints.restore_best()
  assert train_step.PROXIES not in best and set(best) == set(
      networks.init(networks.build(config.model), jax.random.key(0), (32, 32, 1)))
  checkpoints.close()


def test_cosface_needs_a_metric_loss():
  config = train_fakes.tiny_config(**{'cosface.weight': 1.0})
  with pytest.raises(config_check.ConfigError, match='config.cosface.weight'):
    config_check.validate(config)


def test_model_functions_work_under_the_callers_jit_and_vmap(data):
  config = train_fakes.tiny_config()
  model = networks.build(config.model)
  init = jax.jit(functools.partial(networks.init, model, image_shape=(32, 32, 1)))
  params = init(jax.random.key(0))
  pairs = jnp.asarray(data.test.images[:12], jnp.float32) / 255.0
  logits = jax.jit(functools.partial(networks.pair_logits, model))(params, pairs)
  assert logits.shape == (12,)
  chunked = jax.jit(jax.vmap(functools.partial(networks.pair_logits, model, params)))(
      pairs.reshape(3, 4, *pairs.shape[1:]))
  np.testing.assert_allclose(chunked.reshape(-1), logits, rtol=1e-5, atol=1e-6)

  @jax.jit
  def via_embeddings(params, pairs):
    embeddings = jax.vmap(functools.partial(networks.encode, model, params), in_axes=1,
                          out_axes=1)(pairs)
    return embeddings, networks.score_embeddings(model, params, embeddings[:, 0], embeddings[:, 1])

  embeddings, scores = via_embeddings(params, pairs)
  assert embeddings.shape == (12, 2, config.model.dense_units)
  np.testing.assert_allclose(scores, logits, rtol=1e-5, atol=1e-6)
  ensemble = jax.jit(jax.vmap(lambda key: networks.pair_probabilities(
      model, networks.init(model, key, (32, 32, 1)), pairs)))(
          jax.random.split(jax.random.key(1), 2))
  assert ensemble.shape == (2, 12) and np.all((ensemble > 0) & (ensemble < 1))
  assert not np.allclose(ensemble[0], ensemble[1])


CONFIGS = sorted(module.name for module in pkgutil.iter_modules(configs.__path__))


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_every_shipped_config_builds_at_its_size_and_takes_a_step(name):
  config = importlib.import_module(f'lfw_siamese.configs.{name}').get_config()
  config_check.validate(config)
  metric = config.loss != 'bce'
  config.batch_size = 4 * config.data.images_per_person if metric else 4
  config.data.singles_per_batch = 0
  shape = images_lib.image_shape(config.data)
  model = networks.build(config.model)
  tx = train_step.make_optimizer(config, 10)
  step = jax.jit(train_step.make_train_step(model, tx, config))
  rng = np.random.default_rng(0)
  if metric:
    batch = {'images': rng.integers(0, 256, (config.batch_size, *shape), np.uint8),
             'person_ids': np.repeat(np.arange(4), config.data.images_per_person).astype(np.int32)}
  else:
    batch = {'images': rng.integers(0, 256, (4, 2, *shape), np.uint8),
             'labels': np.array([0, 1, 0, 1], np.int32)}
  key = jax.random.key(0)
  abstract = jax.eval_shape(lambda k: train_step.create_state(model, tx, shape, k), key)
  parameters = sum(leaf.size for leaf in jax.tree.leaves(abstract.params))
  if parameters > 100_000_000:  # seed.py's 244M and seed_dense4096.py's 975M: compiled only.
    assert step.lower(abstract, batch, key).compile() is not None
    return
  state = train_step.create_state(model, tx, shape, key)
  new_state, step_metrics = step(state, batch, key)
  assert np.isfinite(float(step_metrics['loss'])) and int(new_state.step) == 1
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                       state.params['encoder'], new_state.params['encoder'])
  assert all(jax.tree.leaves(moved)), name
