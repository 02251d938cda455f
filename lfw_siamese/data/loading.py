"""LFW pairs and identities for training: decoded once, cached in memory and on disk.

Images come from the TFDS builders in tfds_lfw (prepared on first use), are decoded and
preprocessed once per (variant, preprocessing), and kept in memory (up to
`config.data.memory_cache_gb`) and in `config.data.cache_dir` (default
`<tfds_dir>/lfw_siamese_cache`) for later runs; or, with `config.data.bundle` set, from a file
bundle.py wrote, without TFDS.
"""

import collections
import os
import pathlib
import sys

import ml_collections
import numpy as np

from lfw_siamese import config_check
from lfw_siamese import files
from lfw_siamese.data import bundle
from lfw_siamese.data import datasets
from lfw_siamese.data import images as images_lib
from lfw_siamese.data import lists
from lfw_siamese.data import samplers
from lfw_siamese.data import sources
from lfw_siamese.data.datasets import IdentitySet
from lfw_siamese.data.datasets import PairSet
from lfw_siamese.data.datasets import TrainingData
from lfw_siamese.data.lists import LfwDataError

SPLITS = lists.PAIR_SPLITS  # view1_train, view1_test, fold0..fold9
_CACHE_FORMAT = 1  # Bump when what the disk cache holds changes meaning.
_MEMORY_CACHE: collections.OrderedDict[tuple, PairSet | IdentitySet] = collections.OrderedDict()


def load_pairs(data_config: ml_collections.ConfigDict, split: str) -> PairSet:
  """The pairs of a split ('view1_train', 'view1_test', 'fold0'..'fold9'), preprocessed."""
  return _load(data_config, 'pairs', split, lambda arrays: PairSet(
      arrays['unique_images'][arrays['index']], arrays['labels'], arrays['names'],
      arrays['numbers']))


def load_identities(data_config: ml_collections.ConfigDict, split: str) -> IdentitySet:
  """Every image of the people of a split (peopleDevTrain/peopleDevTest, people.txt folds)."""
  return _load(data_config, 'people', split, lambda arrays: datasets.identity_set(
      arrays['images'], arrays['names'], arrays['numbers']))


def _load(data_config, kind: str, split: str, make):
  """A split's set (kind 'pairs' or 'people'), made from its arrays by `make`; from memory when
  it was loaded before."""
  if split not in SPLITS:
    raise LfwDataError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
  config_check.check_data(data_config)
  settings = images_lib.preprocessing(data_config)
  memory_key = _memory_key(data_config, settings, kind, split)
  if (dataset := _recall(memory_key)) is None:
    dataset = _remember(memory_key, make(_load_arrays(data_config, settings, kind, split)),
                        data_config)
  return dataset


def training_data(config: ml_collections.ConfigDict) -> TrainingData:
  """Train, validation and test sets for config.data's protocol, fold and paradigm.

  view1: train from pairsDevTrain, test = pairsDevTest. view2 fold k: train from the other nine
  folds, test = fold k. Restricted: a seeded data.validation_fraction of the training pairs is
  held out for validation. Unrestricted: train is an IdentitySet of the training people, minus a
  seeded data.validation_fraction of the people with two or more images; validation pairs are
  drawn among those held-out people only.
  """
  data = config.data
  config_check.check_data(data)
  train_splits, test_split = protocol_splits(data)
  fraction = float(data.validation_fraction)
  test = load_pairs(data, test_split)
  if data.paradigm == 'restricted':
    train = datasets.concatenate_pairs([load_pairs(data, split) for split in train_splits])
    train, validation = datasets.split_validation(train, fraction, seed=config.seed)
    return TrainingData(train, validation, test)
  train, held_out = unrestricted_people(config)
  restricted_pairs = sum(_num_pairs(data, split) for split in train_splits)
  num_validation = max(round(fraction * restricted_pairs), len(held_out)) if fraction else 0
  # Fixed across epochs; its people are disjoint from training, so the epoch number is arbitrary.
  validation = samplers.identity_pair_set(held_out, num_validation, seed=config.seed, epoch=0)
  return TrainingData(train, validation, test)


def fallback_variant(data_config: ml_collections.ConfigDict) -> str | None:
  """The variant to download instead of data.variant when that one is nowhere here (no bundle,
  no prepared data, no local copy) and has no download mirror: 'funneled'; else None."""
  if data_config.get('bundle') or data_config.variant in sources.ARCHIVE_DOWNLOADS:
    return None
  tfds_dir = sources.tfds_data_dir(data_config.tfds_dir)
  if sources.local_copy(data_config.variant, lfw_dir=data_config.lfw_dir,
                        tfds_dir=tfds_dir) is not None:
    return None
  if all(_tfds_lfw().is_prepared(kind, data_config) for kind in ('pairs', 'people')):
    return None
  return 'funneled'


def unrestricted_people(config: ml_collections.ConfigDict) -> tuple[IdentitySet, IdentitySet]:
  """(train, held out): the training people of config's protocol, less those held out for
  validation (data.validation_fraction of the people with two or more images, seeded)."""
  train_splits, _ = protocol_splits(config.data)
  identities = datasets.concatenate_identities([load_identities(config.data, split)
                                                for split in train_splits])
  return datasets.hold_out_people(identities, float(config.data.validation_fraction),
                                  seed=config.seed)


def protocol_splits(data_config: ml_collections.ConfigDict) -> tuple[list[str], str]:
  """(training splits, test split) of data.protocol and data.fold."""
  if data_config.protocol == 'view1':
    return ['view1_train'], 'view1_test'
  fold = data_config.fold
  return [f'fold{k}' for k in range(lists.NUM_FOLDS) if k != fold], f'fold{fold}'


def clear_memory_cache():
  """Forgets the decoded images held in memory (the disk cache stays)."""
  _MEMORY_CACHE.clear()


def cache_dir(data_config: ml_collections.ConfigDict) -> pathlib.Path:
  """data.cache_dir, else <tfds_dir>/lfw_siamese_cache."""
  if data_config.cache_dir:
    return pathlib.Path(data_config.cache_dir).expanduser()
  return sources.tfds_data_dir(data_config.tfds_dir) / 'lfw_siamese_cache'


def _load_arrays(data_config, settings: images_lib.Preprocessing, kind: str, split: str) -> dict:
  """A split's arrays ('pairs' or 'people'): from the bundle, else the disk cache, else decoded
  from TFDS (and cached)."""
  if data_config.get('bundle'):
    read = bundle.read_pairs if kind == 'pairs' else bundle.read_people
    return read(data_config.bundle, split, **_bundle_checks(data_config, settings))
  builder = _tfds_lfw().builder(kind, data_config)
  path = _cache_path(data_config, builder, settings, f'{kind}-{split}.npz')
  arrays = _read_cache(path)
  if arrays is None:
    decode = _decode_pairs if kind == 'pairs' else _decode_people
    arrays = decode(builder, split, settings, int(data_config.get('decode_workers', 1)))
    _write_cache(path, arrays)
  return arrays


def _decode_people(builder, split: str, settings: images_lib.Preprocessing, workers: int) -> dict:
  """Reads a people split and decodes its images."""
  examples = _tfds_lfw().read_split(builder, split)
  names = np.array([e['name'] for e in examples], dtype=str)
  numbers = np.array([e['number'] for e in examples], np.int32)
  return {
      'images': images_lib.decode_many(
          [e['image'] for e in examples], settings, builder.channels,
          names=[f'{builder.name}/{split}: {e["name"]}_{e["number"]:04d}' for e in examples],
          workers=workers),
      'names': names, 'numbers': numbers}


def _decode_pairs(builder, split: str, settings: images_lib.Preprocessing, workers: int) -> dict:
  """Reads a pairs split and decodes each distinct image once."""
  examples = _tfds_lfw().read_split(builder, split)
  position, blobs, labels = {}, [], []
  index = np.empty((len(examples), 2), np.int32)
  for i, example in enumerate(examples):
    for side in (0, 1):
      key = (example[f'name{side + 1}'], int(example[f'number{side + 1}']))
      if key not in position:
        position[key] = len(blobs)
        blobs.append(example[f'image{side + 1}'])
        labels.append(f'{builder.name}/{split}: {key[0]}_{key[1]:04d}')
      index[i, side] = position[key]
  return {
      'unique_images': images_lib.decode_many(blobs, settings, builder.channels, names=labels,
                                              workers=workers),
      'index': index,
      'labels': np.array([e['label'] for e in examples], np.int32),
      'names': np.array([[e['name1'], e['name2']] for e in examples], dtype=str).reshape(-1, 2),
      'numbers': np.array([[e['number1'], e['number2']] for e in examples],
                          np.int32).reshape(-1, 2),
  }


def _memory_key(data_config, settings, kind: str, split: str) -> tuple:
  return (str(sources.tfds_data_dir(data_config.tfds_dir)), data_config.get('bundle', ''),
          data_config.lfw_dir or os.environ.get('LFW_DIR', ''), data_config.variant, settings,
          kind, split)


def _tfds_lfw():
  """The tfds_lfw module, imported on first use: a config reading a bundle needs no TFDS."""
  from lfw_siamese.data import tfds_lfw  # pylint: disable=g-import-not-at-top
  return tfds_lfw


def _bundle_checks(data_config, settings: images_lib.Preprocessing) -> dict:
  """What a bundle must hold for this config (bundle.read_* check it)."""
  return {'preprocessing': settings.key(), 'variant': data_config.variant}


def _num_pairs(data_config, split: str) -> int:
  """How many pairs a split's list holds, without decoding its images."""
  if data_config.get('bundle'):
    return bundle.num_pairs(data_config.bundle, split,
                            **_bundle_checks(data_config, images_lib.preprocessing(data_config)))
  return _tfds_lfw().builder('pairs', data_config).info.splits[split].num_examples


def _cache_path(data_config, builder, settings: images_lib.Preprocessing,
                filename: str) -> pathlib.Path:
  key = f'{builder.builder_config.name}-{settings.key()}-{_tfds_lfw().fingerprint(builder)}'
  return cache_dir(data_config) / f'v{_CACHE_FORMAT}' / key / filename


def _read_cache(path: pathlib.Path) -> dict | None:
  if not path.exists():
    return None
  try:
    with np.load(path, allow_pickle=False) as arrays:
      return {name: arrays[name] for name in arrays.files}
  except (OSError, ValueError, EOFError):  # A truncated or foreign file: rebuild it.
    return None


def _write_cache(path: pathlib.Path, arrays: dict):
  """Writes atomically, so concurrent processes never read a half-written cache."""
  try:
    with files.atomic_write(str(path), 'wb') as f:
      np.savez(f, **arrays)
  except OSError as error:  # A read-only cache dir costs speed, not correctness.
    print(f'lfw_siamese: cannot write cache {path} ({error})', file=sys.stderr)


def _recall(key: tuple):
  """The decoded set cached in memory under key, or None."""
  if key in _MEMORY_CACHE:
    _MEMORY_CACHE.move_to_end(key)
    return _MEMORY_CACHE[key]
  return None


def _remember(key: tuple, dataset, data_config):
  """Caches dataset (made read-only: callers share it), dropping the oldest beyond
  data.memory_cache_gb."""
  for array in datasets.arrays(dataset):
    array.flags.writeable = False
  _MEMORY_CACHE[key] = dataset
  limit = float(data_config.get('memory_cache_gb', 6)) * 2**30
  size = lambda d: sum(array.nbytes for array in datasets.arrays(d))
  while len(_MEMORY_CACHE) > 1 and sum(map(size, _MEMORY_CACHE.values())) > limit:
    _MEMORY_CACHE.popitem(last=False)
  return dataset
