"""Training: optimiser from config, one jitted data-parallel step, resumable epochs, scoring."""

import functools
import itertools
import json
import os
import time
from typing import Any, Iterator

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from lfw_siamese import augment
from lfw_siamese import checkpointing
from lfw_siamese import config_check
from lfw_siamese import fusion
from lfw_siamese import losses
from lfw_siamese import metrics
from lfw_siamese import models
from lfw_siamese import sharding
from lfw_siamese import summary_writer

VIEW1_TRAIN_PAIRS = 2200  # pairsDevTrain.txt: what data.pairs_per_epoch = 0 draws per epoch.
_SUM_NAMES = ('loss', 'accuracy', 'l2', 'steps')
PROXIES = 'cosface_proxies'  # The params entry of config.cosface's per-person proxies (P, D).


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  sums: dict[str, jax.Array]  # Running sums of step metrics over the current epoch.


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           steps_per_epoch: int) -> optax.Schedule:
  """The learning rate at each step: constant, cosine to 0 over training, or decayed each epoch."""
  if config.lr_schedule == 'constant':
    return optax.constant_schedule(config.learning_rate)
  if config.lr_schedule == 'cosine':
    return optax.cosine_decay_schedule(config.learning_rate, config.num_epochs * steps_per_epoch)
  return optax.exponential_decay(config.learning_rate, transition_steps=steps_per_epoch,
                                 decay_rate=config.lr_decay_per_epoch, staircase=True)


def make_optimizer(config: ml_collections.ConfigDict,
                   steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam or RMSprop (with Keras' epsilon, as the reference) or SGD with momentum (Koch et al.)."""
  learning_rate = learning_rate_schedule(config, steps_per_epoch)
  if config.optimizer == 'adam':
    return optax.adam(learning_rate, eps=1e-7)
  if config.optimizer == 'rmsprop':
    return optax.rmsprop(learning_rate, decay=0.9, eps=1e-7, eps_in_sqrt=False)
  return optax.sgd(learning_rate, momentum=config.momentum)


def l2_penalty(params: Any) -> jax.Array:
  """Sum of squared encoder kernels (conv and dense), Keras' l2 regulariser without its weight."""
  # The pair head is left out: shrinking its weights would only shrink the logits' scale.
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params['encoder'])
             if getattr(path[-1], 'key', None) == 'kernel']
  # vdot: a matmul, 2.5x faster on CPU than XLA's windowed sum of squares (benchmarks/README.md).
  return sum(jnp.vdot(kernel, kernel) for kernel in kernels)


def network_params(params: Any) -> Any:
  """The model's params: the trained params less the CosFace proxies, which only training uses."""
  return {name: value for name, value in params.items() if name != PROXIES}


def unit_range(images: jax.Array) -> jax.Array:
  """uint8 pixels to float32 in [0, 1], on device; float images are taken as already scaled."""
  return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


def make_train_step(model: models.SiameseNet, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict):
  """A pure step (state, batch, key) -> (state, metrics); step randomness is fold_in(key, step)."""
  loss_name, l2_weight = config.loss, config.l2_weight
  # The metric losses' one hyperparameter: supcon's temperature, the others' margin.
  loss_parameter = config.temperature if loss_name == 'supcon' else config.margin
  augment_config = config.augment
  cosface = config.cosface

  def objective(params, batch, key):
    augment_key, dropout_key = jax.random.split(key)
    images = augment.augment_images(augment_key, unit_range(batch['images']), augment_config)
    if loss_name == 'bce':
      logits = models.pair_logits(model, params, images, train=True, dropout_key=dropout_key)
      data_loss = losses.binary_cross_entropy(logits, batch['labels'])
      accuracy = losses.pair_accuracy(logits, batch['labels'])
    else:
      network = network_params(params)
      embeddings = models.encode(model, network, images, train=True, dropout_key=dropout_key)
      metric_loss = losses.METRIC_LOSSES[loss_name](embeddings, batch['person_ids'],
                                                     loss_parameter)
      if cosface.weight:
        metric_loss += cosface.weight * losses.cosface(
            embeddings, params[PROXIES], batch['person_ids'], cosface.margin, cosface.scale)
      # The head alone learns BCE on every in-batch pair of frozen embeddings: calibrated logits.
      frozen = jax.lax.stop_gradient(embeddings)
      head_logits = models.score_embeddings(model, network, frozen[:, None], frozen[None, :])
      head_loss, accuracy = losses.in_batch_pair_bce(head_logits, batch['person_ids'])
      data_loss = metric_loss + head_loss
    l2 = l2_weight * l2_penalty(params)
    return data_loss + l2, (data_loss, accuracy, l2)

  def train_step(state: TrainState, batch: dict, key: jax.Array):
    step_key = jax.random.fold_in(key, state.step)
    grads, (data_loss, accuracy, l2) = jax.grad(objective, has_aux=True)(
        state.params, batch, step_key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': data_loss, 'accuracy': accuracy, 'l2': l2}
    sums = {name: state.sums[name] + value for name, value in metrics.items()}
    sums['steps'] = state.sums['steps'] + 1
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         sums=sums), metrics

  return train_step


def _zero_sums() -> dict[str, jax.Array]:
  return {name: jnp.zeros((), jnp.float32) for name in _SUM_NAMES}


def _state_around(tx, params) -> TrainState:
  """Step 0 with these params and a fresh optimiser state."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    sums=_zero_sums())


def init_params(model, key, image_shape, proxy_shape=None) -> Any:
  """The model's fresh params, and CosFace proxies of proxy_shape (people, embedding size) if
  given."""
  params = models.init(model, key, image_shape)
  if proxy_shape:
    # Unit-norm rows: Adam moves each coordinate by about the learning rate whatever its scale,
    # so rows of norm sqrt(D) (a plain normal draw) would turn sqrt(D) times slower.
    proxies = jax.random.normal(jax.random.fold_in(key, 1), proxy_shape) / proxy_shape[1] ** 0.5
    params = {**params, PROXIES: proxies}
  return params


def create_state(model, tx, image_shape, key, proxy_shape=None) -> TrainState:
  """Fresh params (from `key`) and optimiser state."""
  return _state_around(tx, init_params(model, key, image_shape, proxy_shape))


def create_state_jitted(model, tx, image_shape, key, out_sharding, proxy_shape=None) -> TrainState:
  """create_state's numbers, from two jitted calls: params, then the rest.

  In one call the optimiser state's buffers would be allocated beside the temporaries of the
  params' random draws (3x the largest kernel): 22 GB at 975M parameters, against 15 GB so.
  """
  params = jax.jit(lambda key: init_params(model, key, image_shape, proxy_shape),
                   out_shardings=out_sharding)(key)
  rest = jax.jit(lambda params: _state_around(tx, params).replace(params=None),
                 out_shardings=out_sharding)(params)
  return rest.replace(params=params)


def distinct_images(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The distinct images (U, H, W, C) of (N, 2, H, W, C) pairs, and (N, 2) rows into them."""
  flat = np.ascontiguousarray(pairs).reshape(2 * len(pairs), int(np.prod(pairs.shape[2:])))
  # Each image's bytes as one opaque value, so that np.unique compares whole images.
  _, first, inverse = np.unique(flat.view(np.dtype((np.void, flat.shape[1]))).ravel(),
                                return_index=True, return_inverse=True)
  return pairs.reshape(-1, *pairs.shape[2:])[first], inverse.reshape(-1, 2)


@functools.lru_cache(maxsize=16)
def _embedding_fn(model: models.SiameseNet, tta_flip: bool, mesh: jax.sharding.Mesh):
  """A jitted (params, uint8 images (N, ...)) -> embeddings (V, N, D): V = 2 (the images, their
  mirror images) under tta_flip, else 1."""

  def embed(params, images):
    images = unit_range(images)
    views = [images, images[..., ::-1, :]] if tta_flip else [images]
    embeddings = models.encode(model, params, jnp.concatenate(views))
    return embeddings.reshape(len(views), images.shape[0], -1)

  return jax.jit(embed, out_shardings=sharding.replicated(mesh),
                 compiler_options=models.compiler_options())


@functools.lru_cache(maxsize=16)
def _rows_probability_fn(model: models.SiameseNet, mesh: jax.sharding.Mesh):
  """A jitted (params, embeddings (V, U, D), rows (N, 2)) -> probabilities (N,), the mean over
  the V x V combinations of the two sides' views."""

  def probabilities(params, embeddings, rows):
    a, b = embeddings[:, rows[:, 0]], embeddings[:, rows[:, 1]]
    logits = models.score_embeddings(model, params, a[:, None], b[None, :])
    return jnp.mean(jax.nn.sigmoid(logits), axis=(0, 1))

  return jax.jit(probabilities, out_shardings=sharding.replicated(mesh))


def predict_probabilities(model: models.SiameseNet, params: Any, pairs,
                          config: ml_collections.ConfigDict, batch_size: int = 128) -> np.ndarray:
  """Same-person probabilities (N,) for a PairSet, on every device (and host); honours tta_flip.

  Each distinct image is embedded once, whatever the number of pairs it is in (View 1's 687
  validation pairs, drawn among the held-out people, hold 430 distinct images in their 1,374
  places).
  """
  mesh = sharding.make_mesh()
  params = sharding.replicate(params, mesh)
  images, rows = distinct_images(pairs.images)
  embed = _embedding_fn(model, bool(config.tta_flip), mesh)
  batch_size = -(-batch_size // mesh.size) * mesh.size
  local_size = batch_size // jax.process_count()
  local_start = jax.process_index() * local_size
  chunks = []
  for begin in range(0, len(images), batch_size):
    chunk = images[begin:begin + batch_size]
    count = len(chunk)
    if count < batch_size:  # Pad so that every batch has one shape (one compilation).
      chunk = np.concatenate([chunk, np.zeros((batch_size - count, *chunk.shape[1:]), chunk.dtype)])
    batch = sharding.global_batch({'images': chunk[local_start:local_start + local_size]}, mesh)
    chunks.append(np.asarray(embed(params, batch['images']).addressable_data(0))[:, :count])
  if not chunks:
    return np.zeros((0,), np.float32)
  embeddings = sharding.replicate(np.concatenate(chunks, axis=1), mesh)
  probabilities = _rows_probability_fn(model, mesh)(params, embeddings,
                                                    sharding.replicate(rows, mesh))
  return np.asarray(probabilities.addressable_data(0))


def evaluate_pairs(model, params, pairs, config) -> dict[str, float]:
  """Mean BCE and accuracy at probability 0.5 of a PairSet."""
  probabilities = predict_probabilities(model, params, pairs, config,
                                        batch_size=2 * config.batch_size)
  labels = np.asarray(pairs.labels)
  return {'loss': metrics.log_loss(probabilities, labels),
          'accuracy': float(np.mean((probabilities >= 0.5) == (labels == 1)))}


def _is_identity_set(train) -> bool:
  return hasattr(train, 'person_ids')


def epoch_batches(train, config: ml_collections.ConfigDict, epoch: int) -> Iterator[dict]:
  """This process's share of each global batch of an epoch; depends only on seed and epoch."""
  from lfw_siamese import input_pipeline  # pylint: disable=g-import-not-at-top
  shard = dict(process_index=jax.process_index(), process_count=jax.process_count())
  if _is_identity_set(train):
    if config.loss != 'bce':
      return input_pipeline.identity_batches(
          train, config.batch_size, seed=config.seed, epoch=epoch,
          images_per_person=config.data.images_per_person,
          singles_per_batch=config.data.singles_per_batch, **shard)
    train = input_pipeline.identity_pair_set(
        train, config.data.pairs_per_epoch or VIEW1_TRAIN_PAIRS, seed=config.seed, epoch=epoch)
  return input_pipeline.pair_batches(train, config.batch_size, seed=config.seed, epoch=epoch,
                                     **shard)


def steps_per_epoch(train, config: ml_collections.ConfigDict) -> int:
  """Optimiser steps in one epoch."""
  if _is_identity_set(train):
    if config.loss != 'bce':
      return sum(1 for _ in epoch_batches(train, config, 0))
    return (config.data.pairs_per_epoch or VIEW1_TRAIN_PAIRS) // config.batch_size
  return len(train.labels) // config.batch_size


def _new_progress() -> dict:
  return {'epoch': 0, 'batches_done': 0, 'history': [], 'best_epoch': 0, 'train_seconds': 0.0}


def _is_better(record: dict, progress: dict, best_epoch_by: str) -> bool:
  """Whether this epoch beats the best so far: higher val_acc or lower val_loss (ties: first)."""
  if not progress['best_epoch']:
    return True
  best = progress['history'][progress['best_epoch'] - 1][best_epoch_by]
  value = record[best_epoch_by]
  return value < best if best_epoch_by == 'val_loss' else value > best


@functools.lru_cache(maxsize=4)
def _compiled_train_step(model, config_json: str, epoch_steps: int, mesh: jax.sharding.Mesh):
  """The optimiser and the jitted, donating step; cached so that repeated runs (folds, tests)
  in one process compile once."""
  config = ml_collections.ConfigDict(json.loads(config_json))
  tx = make_optimizer(config, epoch_steps)
  replicated = sharding.replicated(mesh)
  return tx, jax.jit(make_train_step(model, tx, config), donate_argnums=0,
                     compiler_options=models.compiler_options(),
                     in_shardings=(replicated, sharding.batch_sharding(mesh), replicated),
                     out_shardings=(replicated, replicated))


def _train_epoch(state, train_step, train_key, train, config, epoch, epoch_steps, progress,
                 checkpoints, mesh) -> TrainState:
  """Runs an epoch from progress['batches_done'] on, saving every checkpoint_every_steps."""
  is_main = jax.process_index() == 0
  bar = tqdm.tqdm(total=epoch_steps, initial=progress['batches_done'], disable=not is_main,
                  desc=f'epoch {epoch + 1}/{config.num_epochs}', unit='step', leave=False)
  step = int(jax.device_get(state.step))
  logged_at, logged_step, started = time.time(), step, time.time()
  for local_batch in itertools.islice(epoch_batches(train, config, epoch),
                                      progress['batches_done'], None):
    state, _ = train_step(state, sharding.global_batch(local_batch, mesh), train_key)
    step += 1
    progress['batches_done'] += 1
    bar.update(1)
    if step % config.log_every_steps == 0:
      sums = jax.device_get(state.sums)  # A host sync only every log_every_steps.
      now = time.time()
      pairs_per_second = (step - logged_step) * config.batch_size / (now - logged_at)
      bar.set_postfix({'loss': f'{sums["loss"] / sums["steps"]:.4f}',
                       'acc': f'{sums["accuracy"] / sums["steps"]:.3f}',
                       'pairs/s': f'{pairs_per_second:.1f}'})
      logged_at, logged_step = now, step
    if (config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0
        and progress['batches_done'] < epoch_steps):  # An epoch's end saves after validation.
      progress['train_seconds'] += time.time() - started
      started = time.time()
      checkpoints.save_latest(step, state, progress)
  bar.close()
  progress['train_seconds'] += time.time() - started
  return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, restart: bool = False,
                       data=None) -> dict:
  """Trains (resuming from WORKDIR's latest checkpoint), then scores the best epoch; the summary.

  Args:
    config: a training config (see configs/base.py).
    workdir: where config.json, checkpoints/, metrics.jsonl, tensorboard/ and summary.json go.
    restart: wipe a workdir that holds a run of another config instead of refusing it.
    data: a TrainingData (train, validation, test); default: input_pipeline.training_data(config).
  """
  config_check.validate(config)
  mesh = sharding.make_mesh()
  if config.batch_size % mesh.size:
    raise config_check.ConfigError(
        f'config.batch_size: {config.batch_size} does not split evenly over {mesh.size} devices; '
        f'use a multiple of {mesh.size}')
  checkpointing.prepare_workdir(workdir, config, restart)
  if data is None:
    from lfw_siamese import input_pipeline  # pylint: disable=g-import-not-at-top
    data = input_pipeline.training_data(config)
  is_main = jax.process_index() == 0
  model = models.build(config.model)
  epoch_steps = steps_per_epoch(data.train, config)
  if epoch_steps < 1:
    raise config_check.ConfigError(
        f'config.batch_size: {config.batch_size} is larger than the training set')
  tx, train_step = _compiled_train_step(model, json.dumps(checkpointing.config_dict(config)),
                                        epoch_steps, mesh)
  replicated = sharding.replicated(mesh)
  init_key, train_key = jax.jit(lambda: jax.random.split(jax.random.key(config.seed)),
                                out_shardings=replicated)()
  image_shape = tuple(data.validation.images.shape[-3:])
  proxy_shape = ((data.train.num_people, config.model.dense_units) if config.cosface.weight
                 else None)
  abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
      jax.eval_shape(functools.partial(create_state, model, tx, image_shape,
                                       proxy_shape=proxy_shape), init_key))
  checkpoints = checkpointing.Checkpoints(workdir)
  if checkpoints.latest_step() is not None:
    state, progress = checkpoints.restore_latest(abstract_state)
  else:
    state = create_state_jitted(model, tx, image_shape, init_key, replicated, proxy_shape)
    progress = _new_progress()
  checkpoints.forget_best_after(progress['epoch'])  # Bests saved by a run killed before 'latest'.
  writer = summary_writer.MetricWriter(workdir, enabled=is_main)
  writer.write_history(progress['history'])
  learning_rate = learning_rate_schedule(config, epoch_steps)
  for epoch in range(progress['epoch'], config.num_epochs):
    state = _train_epoch(state, train_step, train_key, data.train, config, epoch, epoch_steps,
                         progress, checkpoints, mesh)
    started = time.time()
    sums = jax.device_get(state.sums)
    state = state.replace(sums=jax.jit(_zero_sums, out_shardings=replicated)())
    validation = evaluate_pairs(model, state.params, data.validation, config)
    progress['train_seconds'] += time.time() - started
    step = int(jax.device_get(state.step))
    record = {'epoch': epoch + 1, 'step': step,
              'train_loss': float(sums['loss'] / sums['steps']),
              'train_acc': float(sums['accuracy'] / sums['steps']),
              'train_l2': float(sums['l2'] / sums['steps']),
              'val_loss': validation['loss'], 'val_acc': validation['accuracy'],
              'learning_rate': float(learning_rate(step - 1)),
              'train_seconds': round(progress['train_seconds'], 3)}
    progress['history'].append(record)
    # Order matters for a kill at any point: best, then latest (which forgets a newer best).
    if _is_better(record, progress, config.best_epoch_by):
      checkpoints.save_best(epoch + 1, network_params(state.params), record)
      progress.update(best_epoch=epoch + 1)
    progress.update(epoch=epoch + 1, batches_done=0)
    checkpoints.save_latest(step, state, progress)
    writer.write_history(progress['history'])
    writer.write_scalars(epoch + 1, {f'{split}/{name}': record[f'{split}_{name}']
                                     for split in ('train', 'val') for name in ('loss', 'acc')})
    if is_main:
      tqdm.tqdm.write(f'epoch {epoch + 1}: ' + ', '.join(
          f'{name} {record[name]:.4f}'
          for name in ('train_loss', 'train_acc', 'val_loss', 'val_acc')))
  writer.close()
  del state  # The best params replace the last ones.

  abstract_params = network_params(abstract_state.params)
  params, best_record = checkpoints.restore_best(abstract_params)
  checkpoints.close()
  fusion_figure = None
  if is_main:  # Only the main process draws and writes (matplotlib loads slowly).
    from lfw_siamese import report  # pylint: disable=g-import-not-at-top
    fusion_figure = report.figure_path(workdir, report.FUSION)
  summary, test_scores, fusion_stage = score(model, params, data, config, fusion_figure)
  summary.update(best_epoch=best_record['epoch'], val_acc=best_record['val_acc'],
                 epochs=len(progress['history']), train_seconds=round(progress['train_seconds'], 3),
                 param_count=models.count_params(params), devices=jax.device_count(),
                 processes=jax.process_count(), config=checkpointing.config_dict(config))
  if is_main:
    if fusion_stage is not None:
      fusion_stage.save(workdir)
    checkpointing.write_json(os.path.join(workdir, 'summary.json'), summary)
    report.write_training_report(workdir, summary, data.test, test_scores)
  return summary


def score(model, params, data, config, fusion_figure: str | None = None
          ) -> tuple[dict, np.ndarray, Any]:
  """Scores the test pairs (View 1 test or a fold) at the threshold chosen on validation.

  With config.lbp_fusion.enabled, the fusion's figure is drawn at fusion_figure when given.

  Returns:
    The verification report's numbers, the test pairs' probabilities and, with
    config.lbp_fusion.enabled, the fusion stage whose fused scores these are (else None).
  """
  validation = predict_probabilities(model, params, data.validation, config,
                                     batch_size=2 * config.batch_size)
  test = predict_probabilities(model, params, data.test, config, batch_size=2 * config.batch_size)
  if config.lbp_fusion.enabled:
    stage, report, fused_test = fusion.fit_lbp_fusion(config.lbp_fusion, data, validation, test,
                                                      figure=fusion_figure)
    return report, fused_test, stage
  report = metrics.verification_report(validation, np.asarray(data.validation.labels), test,
                                       np.asarray(data.test.labels))
  return {name: float(value) for name, value in report.items()}, test, None
