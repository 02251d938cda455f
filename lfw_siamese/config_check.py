"""Validates a training config in one place, with a one-line message naming the field."""

import ml_collections

from lfw_siamese import fusion
from lfw_siamese import models

_CHOICES = {
    'data.variant': ('original', 'funneled', 'deepfunneled', 'lfwa'),
    'data.protocol': ('view1', 'view2'),
    'data.paradigm': ('restricted', 'unrestricted'),
    'data.color': ('grayscale', 'rgb'),
    'loss': ('bce', 'contrastive', 'triplet', 'supcon'),
    'optimizer': ('adam', 'rmsprop', 'sgd'),
    'lr_schedule': ('constant', 'cosine', 'exponential'),
    'best_epoch_by': ('val_acc', 'val_loss'),
}
# field: (lowest, highest, lowest allowed itself, highest allowed itself)
_RANGES = {
    'data.fold': (0, 9, True, True),
    'data.crop': (0, 250, True, True),
    'data.image_size': (0, 1024, False, True),
    'data.validation_fraction': (0.0, 1.0, False, False),
    'data.pairs_per_epoch': (0, float('inf'), True, False),
    'data.images_per_person': (2, float('inf'), True, False),
    'data.singles_per_batch': (0, float('inf'), True, False),
    'model.dropout': (0.0, 1.0, True, False),
    'model.dense_units': (0, float('inf'), False, False),
    'margin': (0.0, float('inf'), False, False),
    'temperature': (0.0, float('inf'), False, False),
    'l2_weight': (0.0, float('inf'), True, False),
    'cosface.weight': (0.0, float('inf'), True, False),
    'cosface.margin': (0.0, 1.0, True, False),
    'cosface.scale': (0.0, float('inf'), False, False),
    'learning_rate': (0.0, float('inf'), False, False),
    'momentum': (0.0, 1.0, True, False),
    'lr_decay_per_epoch': (0.0, 1.0, False, True),
    'batch_size': (0, float('inf'), False, False),
    'num_epochs': (0, float('inf'), False, False),
    'log_every_steps': (0, float('inf'), False, False),
    'checkpoint_every_steps': (0, float('inf'), True, False),
}
_INTEGERS = ('data.fold', 'data.crop', 'data.image_size', 'data.pairs_per_epoch',
             'data.images_per_person', 'data.singles_per_batch', 'model.dense_units', 'batch_size',
             'num_epochs', 'seed', 'log_every_steps', 'checkpoint_every_steps')


class ConfigError(ValueError):
  """A config field holds a value training cannot use."""


def _get(config: ml_collections.ConfigDict, name: str):
  value = config
  for part in name.split('.'):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field that training cannot use."""
  for name in set(_RANGES) | set(_CHOICES) | set(_INTEGERS):
    try:
      _get(config, name)
    except (KeyError, AttributeError):
      raise ConfigError(f'config.{name}: missing (see lfw_siamese/configs/base.py)') from None
  for name, choices in _CHOICES.items():
    if _get(config, name) not in choices:
      raise ConfigError(f'config.{name}: expected one of {choices}, got {_get(config, name)!r}')
  for name in _INTEGERS:
    value = _get(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f'config.{name}: expected an integer, got {value!r}')
  for name, (low, high, low_ok, high_ok) in _RANGES.items():
    value = _get(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f'config.{name}: expected a number, got {value!r}')
    if value < low or value > high or (value == low and not low_ok) or (
        value == high and not high_ok):
      interval = f'{"[" if low_ok else "("}{low}, {high}{"]" if high_ok else ")"}'
      raise ConfigError(f'config.{name}: expected a value in {interval}, got {value!r}')
  if config.data.crop and config.data.crop < config.data.image_size // 4:
    raise ConfigError(f'config.data.crop: {config.data.crop} source pixels is too small for '
                      f'data.image_size {config.data.image_size}')
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
  try:
    fusion.check_settings(config.lbp_fusion, config.data.image_size)
  except ValueError as error:
    raise ConfigError(f'config.{error}') from None
  for name in ('augment.flip', 'augment.affine', 'tta_flip', 'model.residual',
               'lbp_fusion.enabled'):
    if not isinstance(_get(config, name), bool):
      raise ConfigError(f'config.{name}: expected True or False, got {_get(config, name)!r}')
  try:
    models.build(config.model)
  except (ValueError, TypeError) as error:
    raise ConfigError(f'config.{error}') from None
