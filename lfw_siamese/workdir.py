"""The run folder: its file names, config.json, summary.json, fold workdirs, atomic JSON writes.

  WORKDIR/config.json        the training config (prepare)
  WORKDIR/checkpoints/       Orbax checkpoints: latest/ (to resume) and best/ (checkpointing.py)
  WORKDIR/metrics.jsonl      one JSON object per epoch; WORKDIR/tensorboard/ the same as events
  WORKDIR/summary.json       the scored best epoch (written when training ends)
  WORKDIR/lbp_fusion.npz     the fusion stage, when there is one (classic/fusion.py)
  WORKDIR/eval_*.json        python -m lfw_siamese.evaluate's results
  WORKDIR/figures/, report.md
  WORKDIR/fold_K/            View 2: the run that holds out fold K
"""

import json
import os
import shutil

import ml_collections

from lfw_siamese import config_check
from lfw_siamese import files

CONFIG = 'config.json'
CHECKPOINTS = 'checkpoints'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'tensorboard'
SUMMARY = 'summary.json'
FUSION_STAGE = 'lbp_fusion.npz'
REPORT = 'report.md'
FIGURES = 'figures'
VIEW1_SCORES = 'eval_view1_scores.npz'
# What a training run writes, and a restart removes.
RUN_OUTPUTS = (CHECKPOINTS, METRICS, SUMMARY, TENSORBOARD, CONFIG)
# Fields (and groups of fields) that say where things are, how often to report or what follows
# the training of the network (the fusion stage), not what is trained.
RUN_ONLY_FIELDS = ('data.lfw_dir', 'data.tfds_dir', 'data.cache_dir', 'data.bundle',
                   'data.decode_workers', 'data.memory_cache_gb', 'log_every_steps',
                   'checkpoint_every_steps', 'keep_freed_memory', 'lbp_fusion')


class WorkdirConflict(Exception):
  """The workdir cannot take this run: it holds another config's, is a file, or is not writable."""


def path(workdir: str, name: str) -> str:
  """WORKDIR/name."""
  return os.path.join(workdir, name)


def figure_path(workdir: str, name: str) -> str:
  """WORKDIR/figures/name."""
  return os.path.join(workdir, FIGURES, name)


def fold_workdir(workdir: str, fold: int) -> str:
  """Where experiments/view2_folds.py trains the model that holds out View 2's `fold`."""
  return os.path.join(workdir, f'fold_{fold}')


def result_path(workdir: str, protocol: str, with_fusion: bool = True) -> str:
  """Where a protocol's result goes: WORKDIR/eval_PROTOCOL.json, or ..._cnn_only.json."""
  return os.path.join(workdir, f"eval_{protocol}{'' if with_fusion else '_cnn_only'}.json")


def read_json(file: str) -> dict | None:
  """A JSON file's contents; None when it is absent or not valid JSON."""
  if not os.path.exists(file):
    return None
  with open(file) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError:
      return None


def has_summary(workdir: str) -> bool:
  """Whether training has finished and scored: WORKDIR/summary.json exists."""
  return os.path.exists(path(workdir, SUMMARY))


def read_summary(workdir: str) -> dict:
  """WORKDIR/summary.json; FileNotFoundError or ValueError naming it when it cannot be read."""
  file = path(workdir, SUMMARY)
  if not os.path.exists(file):
    raise FileNotFoundError(f'{file}: no such file (training writes it when it ends)')
  with open(file) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{file}: not valid JSON ({e})') from None


def write_summary(workdir: str, summary: dict) -> None:
  files.write_json(path(workdir, SUMMARY), summary)


def read_threshold(workdir: str, fields: tuple[str, ...] = ('threshold',)) -> float:
  """The decision threshold chosen on validation pairs: the first of `fields` in summary.json."""
  file = path(workdir, SUMMARY)
  if not os.path.exists(file):
    raise FileNotFoundError(f'{file}: no such file (training writes it when it ends; '
                            'pass a threshold explicitly meanwhile)')
  summary = read_summary(workdir)
  field = next((name for name in fields if name in summary), fields[-1])
  if not isinstance(summary.get(field), (int, float)):
    raise ValueError(f'{file}: expected a numeric "{field}" field, got {summary.get(field)!r}')
  return float(summary[field])


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


def is_run_only(name: str) -> bool:
  """Whether a dotted config field name is, or is inside, one of RUN_ONLY_FIELDS."""
  return any(name == field or name.startswith(f'{field}.') for field in RUN_ONLY_FIELDS)


def config_differences(old: dict, new: dict) -> list[str]:
  """'field: old -> new' for each field that changes what is trained.

  A field missing on one side (a workdir written before the field existed) counts as the
  default's.
  """
  defaults = _flatten(config_dict(config_check.defaults()))
  old, new = {**defaults, **_flatten(old)}, {**defaults, **_flatten(new)}
  return [f'{name}: {old.get(name, "<absent>")!r} -> {new.get(name, "<absent>")!r}'
          for name in sorted(set(old) | set(new))
          if not is_run_only(name) and old.get(name) != new.get(name)]


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with; ValueError naming config.json when it is not JSON."""
  file = path(workdir, CONFIG)
  with open(file) as f:
    try:
      return ml_collections.ConfigDict(json.load(f))
    except json.JSONDecodeError as e:
      raise ValueError(f'{file}: not valid JSON ({e})') from None


def prepare(workdir: str, config: ml_collections.ConfigDict, restart: bool) -> None:
  """Checks that a workdir is new or holds this config, wipes it on restart, writes config.json.

  Raises:
    WorkdirConflict: the workdir holds a run of another config and `restart` is False.
  """
  import jax  # pylint: disable=g-import-not-at-top  (JAX loads slowly; readers need none)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirConflict(f'{workdir}: exists and is not a folder; use another --workdir')
  file = path(workdir, CONFIG)
  if restart:
    if jax.process_index() == 0:
      for name in RUN_OUTPUTS:
        target = path(workdir, name)
        if os.path.isdir(target):
          shutil.rmtree(target)
        elif os.path.exists(target):
          os.remove(target)
  elif os.path.exists(file):
    with open(file) as f:
      differences = config_differences(json.load(f), config_dict(config))
    if differences:
      shown = '; '.join(differences[:3]) + ('; ...' if len(differences) > 3 else '')
      raise WorkdirConflict(f'{file}: this workdir holds a run of another config ({shown}); '
                            'pass --restart to start over, or use another --workdir')
  if jax.process_index() == 0:
    try:
      os.makedirs(workdir, exist_ok=True)
      files.write_json(file, config_dict(config))  # Also the probe: a full disk or a read-only folder.
    except OSError as error:
      raise WorkdirConflict(f'{workdir}: cannot write the run there ({error.strerror or error})'
                            ) from None
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('prepare_workdir')
