"""Orbax checkpoints of a workdir: the latest train state (to resume) and the best params."""

import logging
import os
import sys
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from lfw_siamese import failed_reads
from lfw_siamese import workdir as workdir_lib


# Two of each are kept while a new one is written and checked, so that an unreadable checkpoint
# (a full disk, a bad copy) never replaces the last good one.
_KEPT = 2


class CheckpointError(ValueError):
  """A checkpoint that cannot be read back."""


def _manager(directory: str, arrays: str, json_item: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      item_handlers={arrays: ocp.StandardCheckpointHandler(),
                     json_item: ocp.JsonCheckpointHandler()},
      options=ocp.CheckpointManagerOptions(
          preservation_policy=ocp.checkpoint_managers.LatestN(_KEPT), create=True,
          enable_async_checkpointing=False, cleanup_tmp_directories=True))


def _on_this_host(manager: ocp.CheckpointManager, step: int, item: str) -> Any:
  """Abstract arrays of a saved item, placed on this process's first device, whatever the
  topology that saved them (another device count, a GPU)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
                      manager.item_metadata(step)[item])


def _first_line(error: Exception, limit: int = 200) -> str:
  line = (str(error).strip().splitlines() or [''])[0]
  return f'{type(error).__name__}: {line[:limit]}{"..." if len(line) > limit else ""}'


def _restore(manager: ocp.CheckpointManager, step: int, arrays: str, json_item: str,
             abstract: Any) -> tuple[Any, dict]:
  """A step's arrays (laid out as `abstract` says, else on one device) and JSON; CheckpointError
  naming the step's folder when it does not read back.

  A failed read is one line (see failed_reads).
  """
  absl_logger = logging.getLogger('absl')
  level = absl_logger.level
  absl_logger.setLevel(logging.CRITICAL)
  try:
    with failed_reads.quiet_stderr():
      if abstract is None:
        abstract = _on_this_host(manager, step, arrays)
      restored = manager.restore(step, args=ocp.args.Composite(
          **{arrays: ocp.args.StandardRestore(abstract), json_item: ocp.args.JsonRestore()}))
    return restored[arrays], restored[json_item]
  except Exception as error:  # pylint: disable=broad-except  (Orbax and TensorStore raise many)
    problem = _first_line(error)
  finally:
    absl_logger.setLevel(level)
  failed_reads.forget_the_rest()
  folder = os.path.join(str(manager.directory), str(step))
  raise CheckpointError(f'{folder}: unreadable checkpoint ({problem})')


class Checkpoints:
  """'latest' (train state and loop position, keyed by step) and 'best' (params, keyed by epoch)."""

  def __init__(self, workdir: str):
    root = workdir_lib.path(workdir, workdir_lib.CHECKPOINTS)
    self._latest = _manager(os.path.join(root, 'latest'), 'state', 'progress')
    self._best = _manager(os.path.join(root, 'best'), 'params', 'record')

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save_latest(self, step: int, state: Any, progress: dict) -> None:
    if self._latest.latest_step() == step:  # Saved mid-epoch at an epoch's unexpected last step.
      self._latest.delete(step)
    self._latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)), force=True)

  def restore_latest(self, abstract_state: Any = None) -> tuple[Any, dict]:
    """The newest latest state that reads back (laid out as `abstract_state` says, else on one
    device) and its progress; an unreadable newer one is reported and passed over."""
    failures = []
    for step in sorted(self._latest.all_steps(), reverse=True):
      try:
        restored = _restore(self._latest, step, 'state', 'progress', abstract_state)
      except CheckpointError as error:
        failures.append(str(error))
        continue
      for failure in failures:
        print(f'lfw_siamese: {failure}; resuming from step {step} instead', file=sys.stderr)
      return restored
    raise CheckpointError('; '.join(failures) or f'{self._latest.directory}: no checkpoint')

  def save_best(self, epoch: int, params: Any, record: dict) -> None:
    """Saves the best params, then (on one host) reads them back before the previous best goes."""
    self._best.save(epoch, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), record=ocp.args.JsonSave(record)), force=True)
    if jax.process_count() == 1:
      try:
        _restore(self._best, epoch, 'params', 'record', None)
      except CheckpointError as error:
        self._best.delete(epoch)
        raise CheckpointError(f'{error}; the previous best checkpoint is kept') from None
    for step in self._best.all_steps():
      if step < epoch:
        self._best.delete(step)

  def best_epoch(self) -> int | None:
    return self._best.latest_step()

  def restore_best(self, abstract_params: Any = None) -> tuple[Any, dict]:
    """The best params (laid out as `abstract_params` says, else on one device) and their record."""
    step = self._best.latest_step()
    if step is None:
      raise CheckpointError(f'{self._best.directory}: no checkpoint')
    return _restore(self._best, step, 'params', 'record', abstract_params)

  def forget_best_after(self, epoch: int) -> None:
    """Deletes best checkpoints after `epoch` (from a run killed before it saved 'latest')."""
    for step in self._best.all_steps():
      if step > epoch:
        self._best.delete(step)

  def close(self) -> None:
    self._latest.close()
    self._best.close()


def load_best(workdir: str) -> tuple[ml_collections.ConfigDict, Any]:
  """The config of a trained workdir and its best params (by val_acc), as host arrays."""
  config = workdir_lib.read_config(workdir)
  checkpoints = Checkpoints(workdir)
  try:
    if checkpoints.best_epoch() is None:
      best = os.path.join(workdir, workdir_lib.CHECKPOINTS, 'best')
      raise FileNotFoundError(f'{best}: no checkpoint yet; '
                              'train first with python -m lfw_siamese.main --workdir ' + workdir)
    params, _ = checkpoints.restore_best()
  finally:
    checkpoints.close()
  return config, jax.device_get(params)


def load_latest(workdir: str) -> tuple[ml_collections.ConfigDict, Any, dict]:
  """The config, latest train state (as nested dicts of host arrays) and progress of a workdir."""
  config = workdir_lib.read_config(workdir)
  checkpoints = Checkpoints(workdir)
  try:
    state, progress = checkpoints.restore_latest()
  finally:
    checkpoints.close()
  return config, jax.device_get(state), progress
