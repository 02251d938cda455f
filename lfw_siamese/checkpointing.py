"""The workdir: config.json and Orbax checkpoints (latest train state to resume, best params)."""

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from lfw_siamese.configs import base

CONFIG_FILE = 'config.json'
CHECKPOINTS = 'checkpoints'
# Fields (and groups of fields) that say where things are, how often to report or what follows
# the training of the network (the fusion stage), not what is trained.
RUN_ONLY_FIELDS = ('data.lfw_dir', 'data.tfds_dir', 'data.cache_dir', 'data.bundle',
                   'log_every_steps', 'checkpoint_every_steps', 'keep_freed_memory', 'lbp_fusion')
RUN_OUTPUTS = (CHECKPOINTS, 'metrics.jsonl', 'summary.json', 'tensorboard', CONFIG_FILE)


class WorkdirConflict(Exception):
  """The workdir holds a run of a different config."""


def config_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json())


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def config_differences(old: dict, new: dict) -> list[str]:
  """'field: old -> new' for each field that changes what is trained.

  A field missing on one side (a workdir written before the field existed) counts as base.py's.
  """
  defaults = _flatten(config_dict(base.get_config()))
  old, new = {**defaults, **_flatten(old)}, {**defaults, **_flatten(new)}
  return [f'{name}: {old.get(name, "<absent>")!r} -> {new.get(name, "<absent>")!r}'
          for name in sorted(set(old) | set(new))
          if not is_run_only(name) and old.get(name) != new.get(name)]


def is_run_only(name: str) -> bool:
  """Whether a dotted config field name is, or is inside, one of RUN_ONLY_FIELDS."""
  return any(name == field or name.startswith(f'{field}.') for field in RUN_ONLY_FIELDS)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  with open(os.path.join(workdir, CONFIG_FILE)) as f:
    return ml_collections.ConfigDict(json.load(f))


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, restart: bool) -> None:
  """Checks that a workdir is new or holds this config, wipes it on restart, and writes config.json.

  Raises:
    WorkdirConflict: the workdir holds a run of another config and `restart` is False.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if restart:
    if jax.process_index() == 0:
      for name in RUN_OUTPUTS:
        target = os.path.join(workdir, name)
        if os.path.isdir(target):
          shutil.rmtree(target)
        elif os.path.exists(target):
          os.remove(target)
  elif os.path.exists(path):
    with open(path) as f:
      differences = config_differences(json.load(f), config_dict(config))
    if differences:
      shown = '; '.join(differences[:3]) + ('; ...' if len(differences) > 3 else '')
      raise WorkdirConflict(f'{path}: this workdir holds a run of another config ({shown}); '
                            'pass --restart to start over, or use another --workdir')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    write_json(path, config_dict(config))
  _sync('prepare_workdir')


def write_json(path: str, data: Any) -> None:
  """Writes JSON so that a reader (or a run killed meanwhile) never sees half a file."""
  with open(path + '.tmp', 'w') as f:
    json.dump(data, f, indent=2)
  os.replace(path + '.tmp', path)


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _manager(directory: str, arrays: str, json_item: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      item_handlers={arrays: ocp.StandardCheckpointHandler(),
                     json_item: ocp.JsonCheckpointHandler()},
      options=ocp.CheckpointManagerOptions(
          preservation_policy=ocp.checkpoint_managers.LatestN(1), create=True,
          enable_async_checkpointing=False, cleanup_tmp_directories=True))


def _on_this_host(manager: ocp.CheckpointManager, step: int, item: str) -> Any:
  """Abstract arrays of a saved item, placed on this process's first device, whatever the
  topology that saved them (another device count, a GPU)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
                      manager.item_metadata(step)[item])


class Checkpoints:
  """'latest' (train state and loop position, keyed by step) and 'best' (params, keyed by epoch)."""

  def __init__(self, workdir: str):
    self._latest = _manager(os.path.join(workdir, CHECKPOINTS, 'latest'), 'state', 'progress')
    self._best = _manager(os.path.join(workdir, CHECKPOINTS, 'best'), 'params', 'record')

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save_latest(self, step: int, state: Any, progress: dict) -> None:
    if self._latest.latest_step() == step:  # Saved mid-epoch at an epoch's unexpected last step.
      self._latest.delete(step)
    self._latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)), force=True)

  def restore_latest(self, abstract_state: Any = None) -> tuple[Any, dict]:
    """The latest state (laid out as `abstract_state` says, else on one device) and progress."""
    step = self._latest.latest_step()
    if abstract_state is None:
      abstract_state = _on_this_host(self._latest, step, 'state')
    restored = self._latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), progress=ocp.args.JsonRestore()))
    return restored.state, restored.progress

  def save_best(self, epoch: int, params: Any, record: dict) -> None:
    self._best.save(epoch, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), record=ocp.args.JsonSave(record)), force=True)

  def best_epoch(self) -> int | None:
    return self._best.latest_step()

  def restore_best(self, abstract_params: Any = None) -> tuple[Any, dict]:
    """The best params (laid out as `abstract_params` says, else on one device) and their record."""
    step = self._best.latest_step()
    if abstract_params is None:
      abstract_params = _on_this_host(self._best, step, 'params')
    restored = self._best.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params), record=ocp.args.JsonRestore()))
    return restored.params, restored.record

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
  config = read_config(workdir)
  checkpoints = Checkpoints(workdir)
  try:
    if checkpoints.best_epoch() is None:
      raise FileNotFoundError(f'{os.path.join(workdir, CHECKPOINTS, "best")}: no checkpoint yet; '
                              'train first with python -m lfw_siamese.main --workdir ' + workdir)
    params, _ = checkpoints.restore_best()
  finally:
    checkpoints.close()
  return config, jax.device_get(params)


def load_latest(workdir: str) -> tuple[ml_collections.ConfigDict, Any, dict]:
  """The config, latest train state (as nested dicts of host arrays) and progress of a workdir."""
  config = read_config(workdir)
  checkpoints = Checkpoints(workdir)
  try:
    state, progress = checkpoints.restore_latest()
  finally:
    checkpoints.close()
  return config, jax.device_get(state), progress
