"""The config's one owner: its defaults, loading a config file, and every check of its fields."""

import difflib
import importlib.util
import os

import ml_collections

from lfw_siamese.configs import base

_CHOICES = {
    'data.variant': ('original', 'funneled', 'deepfunneled', 'lfwa'),
    'data.protocol': ('view1', 'view2'),
    'data.paradigm': ('restricted', 'unrestricted'),
    'data.color': ('grayscale', 'rgb'),
    'model.padding': ('VALID', 'SAME'),
    'model.norm': ('none', 'group'),
    'model.dense_activation': ('sigmoid', 'relu', 'none'),
    'model.head': ('weighted_l1', 'l2', 'cosine'),
    'model.init': ('default', 'koch2015'),
    'model.compute_dtype': ('float32', 'bfloat16'),
    'loss': ('bce', 'contrastive', 'triplet', 'supcon'),
    'optimizer': ('adam', 'rmsprop', 'sgd'),
    'lr_schedule': ('constant', 'cosine', 'exponential'),
    'best_epoch_by': ('val_acc', 'val_loss'),
}
# Allowed values as intervals: a bracket includes its end, a parenthesis does not.
_INTERVALS = {
    '[0, 9]': ('data.fold',),
    '[0, 250]': ('data.crop',),
    '(0, 1024]': ('data.image_size',),
    '(0.0, 1.0)': ('data.validation_fraction',),
    '[0.0, 1.0)': ('model.dropout', 'cosface.margin', 'momentum'),
    '(0.0, 1.0]': ('lr_decay_per_epoch',),
    '[1, inf)': ('data.decode_workers',),
    '[2, inf)': ('data.images_per_person',),
    '[0, inf)': ('data.pairs_per_epoch', 'data.singles_per_batch', 'data.memory_cache_gb',
                 'l2_weight', 'cosface.weight', 'checkpoint_every_steps'),
    '(0, inf)': ('model.dense_units', 'margin', 'temperature', 'cosface.scale', 'learning_rate',
                 'batch_size', 'num_epochs', 'log_every_steps'),
}
_RANGES = {name: interval for interval, names in _INTERVALS.items() for name in names}
_INTEGERS = ('data.fold', 'data.crop', 'data.image_size', 'data.pairs_per_epoch',
             'data.images_per_person', 'data.singles_per_batch', 'data.decode_workers',
             'model.dense_units', 'batch_size', 'num_epochs', 'seed', 'log_every_steps',
             'checkpoint_every_steps')
_BOOLEANS = ('augment.flip', 'augment.affine', 'tta_flip', 'model.residual', 'lbp_fusion.enabled')
# The fields of config.data that reading a run's images depends on (every config has them).
_DATA_FIELDS = ('data.variant', 'data.protocol', 'data.fold', 'data.paradigm',
                'data.validation_fraction', 'data.color', 'data.crop', 'data.image_size')


class ConfigError(ValueError):
  """A config field holds a value training cannot use."""


def defaults() -> ml_collections.ConfigDict:
  """Every config field, set to the reference model's values (configs/base.py)."""
  return base.get_config()


def load_file(path: str) -> ml_collections.ConfigDict:
  """The get_config() of a config file; ConfigError naming the file when it cannot."""
  if not os.path.isfile(path):
    raise ConfigError(f'--config {path}: no such file')
  try:
    spec = importlib.util.spec_from_file_location('lfw_siamese_config', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()
  except Exception as error:  # pylint: disable=broad-except
    raise ConfigError(f'--config {path}: {type(error).__name__}: {error}') from None


def unknown_field_message(config: ml_collections.ConfigDict, name: str) -> str | None:
  """'no such config field; did you mean X?' for a dotted name config lacks; None if it has it."""
  node = config
  parts = name.split('.')
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      choices = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      close = difflib.get_close_matches(part, choices, n=1)
      hint = f'; did you mean {".".join(parts[:depth] + close)}?' if close else ''
      return f'no such config field{hint} (lfw_siamese/configs/base.py lists every field)'
    node = node[part]
  return None


def _get(config: ml_collections.ConfigDict, name: str):
  value = config
  for part in name.split('.'):
    value = value[part]
  return value


def _within(value: float, interval: str) -> bool:
  """Whether value lies in an interval written as '[low, high)' and the like."""
  low, high = (float(end) for end in interval[1:-1].split(','))
  above = value >= low if interval[0] == '[' else value > low
  below = value <= high if interval[-1] == ']' else value < high
  return above and below


def _check_fields(config, names) -> None:
  """Presence, choices, integer type and ranges of the named dotted fields."""
  for name in names:
    try:
      _get(config, name)
    except (KeyError, AttributeError):
      raise ConfigError(f'config.{name}: missing (see lfw_siamese/configs/base.py)') from None
  for name in names:
    value = _get(config, name)
    if name in _CHOICES and value not in _CHOICES[name]:
      raise ConfigError(f'config.{name}: expected one of {_CHOICES[name]}, got {value!r}')
    if name in _INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
      raise ConfigError(f'config.{name}: expected an integer, got {value!r}')
    if name in _BOOLEANS and not isinstance(value, bool):
      raise ConfigError(f'config.{name}: expected True or False, got {value!r}')
    if name in _RANGES:
      if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'config.{name}: expected a number, got {value!r}')
      if not _within(value, _RANGES[name]):
        raise ConfigError(f'config.{name}: expected a value in {_RANGES[name]}, got {value!r}')


def check_data(data_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field of config.data that reading images cannot use."""
  _check_fields(ml_collections.ConfigDict({'data': data_config}), _DATA_FIELDS)
  if data_config.crop and data_config.crop < data_config.image_size // 4:
    raise ConfigError(f'config.data.crop: {data_config.crop} source pixels is too small for '
                      f'data.image_size {data_config.image_size}')


def check_lbp_fusion(settings: ml_collections.ConfigDict, image_size: int) -> None:
  """Raises ConfigError naming the first lbp_fusion field the descriptor cannot use."""
  radii, grids, dims = settings.radii, settings.grids, settings.dims
  is_int = lambda value: isinstance(value, int) and not isinstance(value, bool)
  if not radii or not all(is_int(r) and 1 <= r <= image_size // 4 for r in radii):
    raise ConfigError(f'config.lbp_fusion.radii: expected integers from 1 to {image_size // 4} '
                      f'(a quarter of the {image_size}-pixel images), got {radii!r}')
  if (not isinstance(grids, (tuple, list)) or not grids or len(set(grids)) < len(grids)
      or not all(is_int(g) and 1 <= g <= image_size // 2 for g in grids)):
    raise ConfigError(f'config.lbp_fusion.grids: expected distinct integers from 1 to '
                      f'{image_size // 2}, got {grids!r}')
  if not is_int(dims) or dims < 2:
    raise ConfigError(f'config.lbp_fusion.dims: expected an integer of 2 or more, got {dims!r}')
  metric = lbp_metric_settings(settings)
  for field, low in (('steps', 0), ('width', 1), ('dims', 2), ('people_per_batch', 2)):
    if not is_int(metric[field]) or metric[field] < low:
      raise ConfigError(f'config.lbp_fusion.metric.{field}: expected an integer of {low} or '
                        f'more, got {metric[field]!r}')
  for field, valid, expected in (('dropout', lambda v: 0 <= v < 1, 'a number in [0, 1)'),
                                 ('learning_rate', lambda v: v > 0, 'a positive number'),
                                 ('temperature', lambda v: v > 0, 'a positive number')):
    value = metric[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
      raise ConfigError(f'config.lbp_fusion.metric.{field}: expected {expected}, got {value!r}')


def lbp_metric_settings(settings: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """settings.metric; with none (a config from before it existed), the defaults', switched off."""
  if 'metric' in settings:
    return settings.metric
  metric = defaults().lbp_fusion.metric
  metric.steps = 0
  return metric


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field that training cannot use."""
  _check_fields(config, sorted(set(_RANGES) | set(_CHOICES) | set(_INTEGERS) | set(_BOOLEANS)))
  check_data(config.data)
  blocks = len(config.model.conv_filters)
  for field in ('conv_kernels', 'conv_strides', 'max_pool'):
    if len(config.model[field]) != blocks:
      raise ConfigError(f'config.model.{field} has {len(config.model[field])} entries but '
                        f'model.conv_filters has {blocks}: give one per conv block')
  if config.loss != 'bce' and config.data.paradigm != 'unrestricted':
    raise ConfigError(f"config.loss: {config.loss!r} mines pairs among identity-labelled images; "
                      "it needs config.data.paradigm='unrestricted'")
  if config.cosface.weight and config.loss == 'bce':
    raise ConfigError('config.cosface.weight: the CosFace term is added to a metric loss; it needs '
                      "config.loss other than 'bce'")
  people_images = config.batch_size - config.data.singles_per_batch
  if config.loss != 'bce' and (people_images <= 0 or people_images % config.data.images_per_person):
    raise ConfigError(f'config.batch_size: {config.batch_size} less data.singles_per_batch '
                      f'{config.data.singles_per_batch} is not a positive multiple of '
                      f'data.images_per_person {config.data.images_per_person}')
  if config.lbp_fusion.enabled and config.data.paradigm != 'unrestricted':
    raise ConfigError("config.lbp_fusion.enabled: the LBP descriptor is learned from identities; "
                      "it needs config.data.paradigm='unrestricted'")
  check_lbp_fusion(config.lbp_fusion, config.data.image_size)
