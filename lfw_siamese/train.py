"""Training: resumable epochs of the jitted data-parallel step, then the best epoch scored."""

import functools
import itertools
import json
import sys
import time
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np
import tqdm

from lfw_siamese import checkpointing
from lfw_siamese import config_check
from lfw_siamese import scoring
from lfw_siamese import sharding
from lfw_siamese import summary_writer
from lfw_siamese import train_step as step_lib
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.classic import fusion
from lfw_siamese.data import loading
from lfw_siamese.data import samplers
from lfw_siamese.evaluation import metrics
from lfw_siamese.model import networks

VIEW1_TRAIN_PAIRS = 2200  # pairsDevTrain.txt: what data.pairs_per_epoch = 0 draws per epoch.


def network_probabilities(model, params, pairs, config, batch_size: int | None = None
                          ) -> np.ndarray:
  """The network's same-person probabilities (N,) of a PairSet, on every device (and host), in
  batches of twice the training batch unless told."""
  return scoring.score_pairs(model, params, pairs.images, tta_flip=bool(config.tta_flip),
                             batch_size=batch_size or 2 * config.batch_size)


def evaluate_pairs(model, params, pairs, config) -> dict[str, float]:
  """Mean BCE and accuracy at probability 0.5 of a PairSet."""
  probabilities = network_probabilities(model, params, pairs, config)
  labels = np.asarray(pairs.labels)
  return {'loss': metrics.log_loss(probabilities, labels),
          'accuracy': float(np.mean((probabilities >= 0.5) == (labels == 1)))}


def _is_identity_set(train) -> bool:
  return hasattr(train, 'person_ids')


def epoch_batches(train, config: ml_collections.ConfigDict, epoch: int) -> Iterator[dict]:
  """This process's share of each global batch of an epoch; depends only on seed and epoch."""
  shard = dict(process_index=jax.process_index(), process_count=jax.process_count())
  if _is_identity_set(train):
    if config.loss != 'bce':
      return samplers.identity_batches(
          train, config.batch_size, seed=config.seed, epoch=epoch,
          images_per_person=config.data.images_per_person,
          singles_per_batch=config.data.singles_per_batch, **shard)
    train = samplers.identity_pair_set(
        train, config.data.pairs_per_epoch or VIEW1_TRAIN_PAIRS, seed=config.seed, epoch=epoch)
  return samplers.pair_batches(train, config.batch_size, seed=config.seed, epoch=epoch, **shard)


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


def _train_epoch(state, train_step, train_key, train, config, epoch, epoch_steps, progress,
                 checkpoints, mesh, on_stage) -> step_lib.TrainState:
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
    if on_stage is not None:
      on_stage(f'step {step} done')
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
                       data=None, on_stage: Callable[[str], None] | None = None) -> dict:
  """Trains (resuming from WORKDIR's latest checkpoint), then scores the best epoch; the summary.

  Args:
    config: a training config (see configs/base.py).
    workdir: where config.json, checkpoints/, metrics.jsonl, tensorboard/ and summary.json go.
    restart: wipe a workdir that holds a run of another config instead of refusing it.
    data: a TrainingData (train, validation, test); default: loading.training_data(config).
    on_stage: called with 'step N done' after each step, 'epoch N validation' before each
      validation, and the name of each stage after the epochs as it starts (those are also
      printed): a run stopped at any of them finishes when run again as if never stopped.
  """
  config_check.validate(config)
  mesh = sharding.make_mesh()
  if config.batch_size % mesh.size:
    raise config_check.ConfigError(
        f'config.batch_size: {config.batch_size} does not split evenly over {mesh.size} devices; '
        f'use a multiple of {mesh.size}')
  workdir_lib.prepare(workdir, config, restart)
  if data is None:
    data = loading.training_data(config)
  is_main = jax.process_index() == 0

  def announce(stage: str) -> None:
    if is_main:
      tqdm.tqdm.write(stage, file=sys.stderr)
    if on_stage is not None:
      on_stage(stage)

  model = networks.build(config.model)
  epoch_steps = steps_per_epoch(data.train, config)
  if epoch_steps < 1:
    raise config_check.ConfigError(
        f'config.batch_size: {config.batch_size} is larger than the training set')
  tx, train_step = step_lib.compiled_train_step(
      model, json.dumps(workdir_lib.config_dict(config)), epoch_steps, mesh)
  replicated = sharding.replicated(mesh)
  init_key, train_key = jax.jit(lambda: jax.random.split(jax.random.key(config.seed)),
                                out_shardings=replicated)()
  image_shape = tuple(data.validation.images.shape[-3:])
  proxy_shape = ((data.train.num_people, config.model.dense_units) if config.cosface.weight
                 else None)
  abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
      jax.eval_shape(functools.partial(step_lib.create_state, model, tx, image_shape,
                                       proxy_shape=proxy_shape), init_key))
  checkpoints = checkpointing.Checkpoints(workdir)
  if checkpoints.latest_step() is not None:
    state, progress = checkpoints.restore_latest(abstract_state)
  else:
    state = step_lib.create_state_jitted(model, tx, image_shape, init_key, replicated, proxy_shape)
    progress = _new_progress()
  checkpoints.forget_best_after(progress['epoch'])  # Bests saved by a run killed before 'latest'.
  writer = summary_writer.MetricWriter(workdir, enabled=is_main)
  writer.write_history(progress['history'])
  learning_rate = step_lib.learning_rate_schedule(config, epoch_steps)
  for epoch in range(progress['epoch'], config.num_epochs):
    state = _train_epoch(state, train_step, train_key, data.train, config, epoch, epoch_steps,
                         progress, checkpoints, mesh, on_stage)
    if on_stage is not None:
      on_stage(f'epoch {epoch + 1} validation')
    started = time.time()
    sums = jax.device_get(state.sums)
    state = state.replace(sums=jax.jit(step_lib.zero_sums, out_shardings=replicated)())
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
      checkpoints.save_best(epoch + 1, step_lib.network_params(state.params), record)
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

  abstract_params = step_lib.network_params(abstract_state.params)
  announce(f'training done ({len(progress["history"])} epochs): scoring the best, epoch '
           f'{checkpoints.best_epoch()}')
  params, best_record = checkpoints.restore_best(abstract_params)
  checkpoints.close()
  fusion_figure = None
  if is_main:  # Only the main process draws and writes (matplotlib loads slowly).
    from lfw_siamese.evaluation import report  # pylint: disable=g-import-not-at-top
    fusion_figure = workdir_lib.figure_path(workdir, report.FUSION)
  summary, test_scores, fusion_stage = score(model, params, data, config, fusion_figure, announce)
  summary.update(variant=config.data.variant, best_epoch=best_record['epoch'],
                 val_acc=best_record['val_acc'], epochs=len(progress['history']),
                 train_seconds=round(progress['train_seconds'], 3),
                 param_count=networks.count_params(params), devices=jax.device_count(),
                 processes=jax.process_count(), config=workdir_lib.config_dict(config))
  if is_main:
    announce(f'writing {workdir_lib.SUMMARY}, {workdir_lib.REPORT} and its figures')
    if fusion_stage is not None:
      fusion_stage.save(workdir)
    workdir_lib.write_summary(workdir, summary)
    report.write_training_report(workdir, summary, data.test, test_scores)
  return summary


def score(model, params, data, config, fusion_figure: str | None = None,
          announce: Callable[[str], None] = lambda stage: None) -> tuple[dict, np.ndarray, Any]:
  """Scores the test pairs (View 1 test or a fold) at the threshold chosen on validation.

  With config.lbp_fusion.enabled, the fusion's figure is drawn at fusion_figure when given.

  Returns:
    The verification report's numbers, the test pairs' probabilities and, with
    config.lbp_fusion.enabled, the fusion stage whose fused scores these are (else None).
  """
  announce(f'scoring {len(data.validation)} validation and {len(data.test)} test pairs')
  validation = network_probabilities(model, params, data.validation, config)
  test = network_probabilities(model, params, data.test, config)
  if config.lbp_fusion.enabled:
    stage, report, fused_test = fusion.fit_lbp_fusion(config.lbp_fusion, data, validation, test,
                                                      figure=fusion_figure, announce=announce)
    return report, fused_test, stage
  report = metrics.verification_report(validation, np.asarray(data.validation.labels), test,
                                       np.asarray(data.test.labels))
  return {name: float(value) for name, value in report.items()}, test, None
