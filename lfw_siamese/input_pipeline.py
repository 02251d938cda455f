"""LFW pairs and identities for training: decoded once, cached, shuffled per epoch, sharded.

Images come from the TFDS builders in tfds_lfw (prepared on first use), are decoded and
preprocessed once per (variant, preprocessing), and kept in memory and in
`config.data.cache_dir` (default `<tfds_dir>/lfw_siamese_cache`) for later runs; or, with
`config.data.bundle` set, from a file bundle.py wrote, without TFDS.

Random streams: every draw uses `np.random.default_rng([seed, epoch, STREAM])`, so the same seed
and epoch give the same batches after a restart, whatever ran before.
"""

import collections
import dataclasses
import os
import pathlib
import sys
from typing import Iterator, Sequence

import ml_collections
import numpy as np

from lfw_siamese import bundle
from lfw_siamese import images as images_lib
from lfw_siamese import lists
from lfw_siamese import sources
from lfw_siamese.lists import LfwDataError

SPLITS = lists.PAIR_SPLITS  # view1_train, view1_test, fold0..fold9
PROTOCOLS = ('view1', 'view2')
PARADIGMS = ('restricted', 'unrestricted')
_CACHE_FORMAT = 1  # Bump when what the disk cache holds changes meaning.
_VALIDATION_STREAM, _SHUFFLE_STREAM, _PAIR_STREAM, _IDENTITY_STREAM = 1, 2, 3, 4
# Decoding threads; on this project's 2 shared cores, one thread measured fastest.
DECODE_WORKERS = int(os.environ.get('LFW_DECODE_WORKERS', '1'))
# Decoded sets kept in memory, least recently used dropped first beyond this many bytes.
MEMORY_CACHE_BYTES = int(float(os.environ.get('LFW_MEMORY_CACHE_GB', '6')) * 2**30)
_MEMORY_CACHE: collections.OrderedDict[tuple, 'PairSet | IdentitySet'] = (
    collections.OrderedDict())


@dataclasses.dataclass(frozen=True)
class PairSet:
  """Pairs of preprocessed images with labels; arrays share the first axis."""
  images: np.ndarray  # uint8 (N, 2, H, W, C)
  labels: np.ndarray  # int32 (N,), 1 = same person
  names: np.ndarray  # str (N, 2)
  numbers: np.ndarray  # int32 (N, 2), NAME_0003.jpg -> 3

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, indices) -> 'PairSet':
    """The pairs at indices (a copy)."""
    return PairSet(*(array[indices] for array in _arrays(self)))


@dataclasses.dataclass(frozen=True)
class IdentitySet:
  """Preprocessed images labelled by person; person_ids are dense 0..P-1 in name order."""
  images: np.ndarray  # uint8 (M, H, W, C)
  person_ids: np.ndarray  # int32 (M,)
  names: np.ndarray  # str (M,)
  numbers: np.ndarray  # int32 (M,)

  def __len__(self) -> int:
    return len(self.person_ids)

  @property
  def num_people(self) -> int:
    return int(self.person_ids.max()) + 1 if len(self) else 0

  def take(self, indices) -> 'IdentitySet':
    """The images at indices (a copy), person ids made dense again."""
    return identity_set(self.images[indices], self.names[indices], self.numbers[indices])


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """What a training run uses: train (pairs, or identities when unrestricted), validation, test."""
  train: PairSet | IdentitySet
  validation: PairSet
  test: PairSet


def identity_set(images: np.ndarray, names: np.ndarray, numbers: np.ndarray) -> IdentitySet:
  """An IdentitySet with dense person ids in name order."""
  _, person_ids = np.unique(np.asarray(names, dtype=str), return_inverse=True)
  return IdentitySet(images, person_ids.astype(np.int32).reshape(-1), np.asarray(names, dtype=str),
                     np.asarray(numbers, np.int32))


def image_shape(data_config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(H, W, C) of images after preprocessing."""
  return images_lib.preprocessing(data_config).shape


def preprocess(image: np.ndarray, data_config: ml_collections.ConfigDict) -> np.ndarray:
  """Any HxW[xC] uint8 image -> uint8 (H, W, C): centred crop, antialiased resize, colour."""
  return images_lib.preprocess(image, data_config)


def load_pairs(data_config: ml_collections.ConfigDict, split: str) -> PairSet:
  """The pairs of a split ('view1_train', 'view1_test', 'fold0'..'fold9'), preprocessed."""
  _check_split(split)
  settings = images_lib.preprocessing(data_config)
  memory_key = _memory_key(data_config, settings, 'pairs', split)
  if (pairs := _recall(memory_key)) is None:
    arrays = _load_arrays(data_config, settings, 'pairs', split)
    pairs = _remember(memory_key, PairSet(arrays['unique_images'][arrays['index']],
                                          arrays['labels'], arrays['names'], arrays['numbers']))
  return pairs


def load_identities(data_config: ml_collections.ConfigDict, split: str) -> IdentitySet:
  """Every image of the people of a split (peopleDevTrain/peopleDevTest, people.txt folds)."""
  _check_split(split)
  settings = images_lib.preprocessing(data_config)
  memory_key = _memory_key(data_config, settings, 'people', split)
  if (identities := _recall(memory_key)) is None:
    arrays = _load_arrays(data_config, settings, 'people', split)
    identities = _remember(memory_key, identity_set(arrays['images'], arrays['names'],
                                                    arrays['numbers']))
  return identities


def training_data(config: ml_collections.ConfigDict) -> TrainingData:
  """Train, validation and test sets for config.data's protocol, fold and paradigm.

  view1: train from pairsDevTrain, test = pairsDevTest. view2 fold k: train from the other nine
  folds, test = fold k. Restricted: a seeded data.validation_fraction of the training pairs is
  held out for validation. Unrestricted: train is an IdentitySet of the training people, minus a
  seeded data.validation_fraction of the people with two or more images; validation pairs are
  drawn among those held-out people only.
  """
  data = config.data
  train_splits, test_split = protocol_splits(data)
  if data.paradigm not in PARADIGMS:
    raise LfwDataError(f"data.paradigm: expected one of {', '.join(PARADIGMS)}, "
                       f'got {data.paradigm!r}')
  fraction = float(data.validation_fraction)
  if not 0.0 <= fraction < 1.0:
    raise LfwDataError(f'data.validation_fraction: expected a value in [0, 1), got {fraction}')
  test = load_pairs(data, test_split)
  if data.paradigm == 'restricted':
    train = concatenate_pairs([load_pairs(data, split) for split in train_splits])
    train, validation = split_validation(train, fraction, seed=config.seed)
    return TrainingData(train, validation, test)
  train, held_out = unrestricted_people(config)
  restricted_pairs = sum(_num_pairs(data, split) for split in train_splits)
  num_validation = max(round(fraction * restricted_pairs), len(held_out)) if fraction else 0
  # Fixed across epochs; its people are disjoint from training, so the epoch number is arbitrary.
  validation = identity_pair_set(held_out, num_validation, seed=config.seed, epoch=0)
  return TrainingData(train, validation, test)


def unrestricted_people(config: ml_collections.ConfigDict) -> tuple[IdentitySet, IdentitySet]:
  """(train, held out): the training people of config's protocol, less those held out for
  validation (data.validation_fraction of the people with two or more images, seeded)."""
  train_splits, _ = protocol_splits(config.data)
  identities = concatenate_identities([load_identities(config.data, split)
                                       for split in train_splits])
  return hold_out_people(identities, float(config.data.validation_fraction), seed=config.seed)


def protocol_splits(data_config: ml_collections.ConfigDict) -> tuple[list[str], str]:
  """(training splits, test split) of data.protocol and data.fold."""
  if data_config.protocol == 'view1':
    return ['view1_train'], 'view1_test'
  if data_config.protocol == 'view2':
    fold = data_config.fold
    if not isinstance(fold, (int, np.integer)) or not 0 <= fold < lists.NUM_FOLDS:
      raise LfwDataError(f'data.fold: expected 0..{lists.NUM_FOLDS - 1}, got {fold!r}')
    return [f'fold{k}' for k in range(lists.NUM_FOLDS) if k != fold], f'fold{fold}'
  raise LfwDataError(f"data.protocol: expected one of {', '.join(PROTOCOLS)}, "
                     f'got {data_config.protocol!r}')


def split_validation(pairs: PairSet, fraction: float, *, seed: int) -> tuple[PairSet, PairSet]:
  """(train, validation): a seeded round(fraction * N) pairs held out, both in list order."""
  num_validation = round(fraction * len(pairs))
  order = np.random.default_rng([seed, _VALIDATION_STREAM]).permutation(len(pairs))
  return pairs.take(np.sort(order[num_validation:])), pairs.take(np.sort(order[:num_validation]))


def hold_out_people(identities: IdentitySet, fraction: float, *,
                    seed: int) -> tuple[IdentitySet, IdentitySet]:
  """(train, held out): a seeded fraction (at least 2) of the people with 2+ images held out."""
  counts = np.bincount(identities.person_ids, minlength=identities.num_people)
  repeated = np.flatnonzero(counts >= 2)
  num_held = min(len(repeated), max(2, round(fraction * len(repeated)))) if fraction else 0
  rng = np.random.default_rng([seed, _VALIDATION_STREAM])
  held = rng.choice(repeated, size=num_held, replace=False)
  is_held = np.isin(identities.person_ids, held)
  return identities.take(np.flatnonzero(~is_held)), identities.take(np.flatnonzero(is_held))


def concatenate_pairs(pair_sets: Sequence[PairSet]) -> PairSet:
  """One PairSet holding all pairs of pair_sets, in order."""
  if len(pair_sets) == 1:
    return pair_sets[0]
  return PairSet(*(np.concatenate(arrays) for arrays in zip(*map(_arrays, pair_sets))))


def concatenate_identities(identity_sets: Sequence[IdentitySet]) -> IdentitySet:
  """One IdentitySet of all images (person ids re-made dense over the union)."""
  if len(identity_sets) == 1:
    return identity_sets[0]
  return identity_set(np.concatenate([s.images for s in identity_sets]),
                      np.concatenate([s.names for s in identity_sets]),
                      np.concatenate([s.numbers for s in identity_sets]))


def pair_batches(pairs: PairSet, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
                 drop_remainder: bool = True, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict]:
  """Batches {'images': uint8 (B/process_count, 2, H, W, C), 'labels': int32}.

  Pixels stay uint8 (a quarter of float32's bytes to gather and send); the train step scales them
  to [0, 1] on device.

  The same seed and epoch give the same batches. Each process gets rows
  [process_index * B/P, (process_index + 1) * B/P) of every global batch of B pairs. Without
  drop_remainder the last, smaller global batch is split as evenly as possible.
  """
  _check_sharding(batch_size, process_index, process_count)
  if shuffle:
    order = np.random.default_rng([seed, epoch, _SHUFFLE_STREAM]).permutation(len(pairs))
  else:
    order = np.arange(len(pairs))
  for batch in _global_batches(order, batch_size, drop_remainder):
    local = np.array_split(batch, process_count)[process_index]
    yield {'images': gather_rows(pairs.images, local), 'labels': pairs.labels[local]}


def identity_pair_set(identities: IdentitySet, num_pairs: int, *, seed: int,
                      epoch: int) -> PairSet:
  """num_pairs pairs drawn from identities by `identity_pair_rows`."""
  if num_pairs == 0:
    return _no_pairs(identities)
  index, labels = identity_pair_rows(identities.person_ids, num_pairs, seed=seed, epoch=epoch)
  images = gather_rows(identities.images, index.reshape(-1))
  return PairSet(images.reshape(index.shape + images.shape[1:]), labels,
                 identities.names[index], identities.numbers[index])


def identity_pair_rows(person_ids: np.ndarray, num_pairs: int, *, seed: int,
                       epoch: int) -> tuple[np.ndarray, np.ndarray]:
  """Rows (num_pairs, 2) into person_ids, half same person (two different images), half not, and
  their int32 labels.

  Same pairs pick a person with two or more images uniformly, different pairs two distinct
  people uniformly (so prolific people do not dominate); images are then uniform per person.
  """
  rng = np.random.default_rng([seed, epoch, _PAIR_STREAM])
  starts, counts, by_person = people_index(person_ids)
  num_same = num_pairs // 2
  num_different = num_pairs - num_same
  repeated = np.flatnonzero(counts >= 2)
  if num_same and not len(repeated):
    raise ValueError('identity_pair_rows: no person has two images, cannot draw same pairs')
  if num_different and len(counts) < 2:
    raise ValueError('identity_pair_rows: fewer than two people, cannot draw different pairs')
  same_people = rng.choice(repeated, size=num_same) if num_same else np.zeros(0, np.int64)
  first = rng.integers(counts[same_people])
  second = (first + rng.integers(1, counts[same_people])) % counts[same_people]
  people1 = rng.integers(len(counts), size=num_different)
  people2 = (people1 + rng.integers(1, len(counts), size=num_different)) % len(counts)
  index = np.concatenate([
      np.stack([starts[same_people] + first, starts[same_people] + second], axis=1),
      np.stack([starts[people1] + rng.integers(counts[people1]),
                starts[people2] + rng.integers(counts[people2])], axis=1),
  ]).astype(np.int64).reshape(-1, 2)
  index = by_person[index[rng.permutation(num_pairs)]]
  labels = person_ids[index[:, 0]] == person_ids[index[:, 1]]
  return index, labels.astype(np.int32)


def identity_batches(identities: IdentitySet, batch_size: int, *, seed: int, epoch: int,
                     images_per_person: int = 2, singles_per_batch: int = 0,
                     process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
  """Batches {'images': uint8 (B/process_count, H, W, C), 'person_ids': int32} of P x K images.

  Each global batch holds (batch_size - singles_per_batch) / K people with K images each (all
  different when a person has K or more, else each image once and some again), for in-batch
  triplet or contrastive mining, then singles_per_batch images of one-image people, which can only
  be negatives. An epoch visits every person with two or more images once, in a seeded order; the
  one-image people follow their own seeded order, cycled.
  """
  _check_sharding(batch_size, process_index, process_count)
  k = images_per_person
  if k < 2 or (batch_size - singles_per_batch) % k or not 0 <= singles_per_batch < batch_size:
    raise ValueError(f'identity_batches: images_per_person must be >= 2 and divide batch_size '
                     f'{batch_size} less singles_per_batch {singles_per_batch}, got {k}')
  rng = np.random.default_rng([seed, epoch, _IDENTITY_STREAM])
  starts, counts, by_person = people_index(identities.person_ids)
  people = rng.permutation(np.flatnonzero(counts >= 2))
  if singles_per_batch:
    singles = by_person[starts[rng.permutation(np.flatnonzero(counts == 1))]]
    if not len(singles):
      raise ValueError('identity_batches: singles_per_batch > 0, but no person has one image')
  per_batch = (batch_size - singles_per_batch) // k
  for batch_index, start in enumerate(range(0, len(people) - per_batch + 1, per_batch)):
    chosen = []
    for person in people[start:start + per_batch]:
      if counts[person] >= k:
        picks = rng.choice(counts[person], size=k, replace=False)
      else:  # Every image once, then repeats.
        picks = np.concatenate([rng.permutation(counts[person]),
                                rng.choice(counts[person], size=k - counts[person])])
      chosen.append(by_person[starts[person] + picks])
    if singles_per_batch:
      taken = np.arange(batch_index * singles_per_batch, (batch_index + 1) * singles_per_batch)
      chosen.append(singles[taken % len(singles)])
    batch = np.concatenate(chosen)
    local = np.array_split(batch, process_count)[process_index]
    yield {'images': gather_rows(identities.images, local),
           'person_ids': identities.person_ids[local]}


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """array[rows], copied as one contiguous block per row."""
  if not array.flags.c_contiguous:
    return array[rows]
  # numpy's take over a 2-D view copies whole rows; fancy indexing over (N, 2, H, W, C) was
  # measured 1.4x to 3x slower (benchmarks/pipeline_throughput.py).
  flat = array.reshape(len(array), -1)
  return np.take(flat, rows, axis=0).reshape((len(rows),) + array.shape[1:])


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
    arrays = (_decode_pairs if kind == 'pairs' else _decode_people)(builder, split, settings)
    _write_cache(path, arrays)
  return arrays


def _decode_people(builder, split: str, settings: images_lib.Preprocessing) -> dict:
  """Reads a people split and decodes its images."""
  examples = _tfds_lfw().read_split(builder, split)
  names = np.array([e['name'] for e in examples], dtype=str)
  numbers = np.array([e['number'] for e in examples], np.int32)
  return {
      'images': images_lib.decode_many(
          [e['image'] for e in examples], settings, builder.channels,
          names=[f'{builder.name}/{split}: {e["name"]}_{e["number"]:04d}' for e in examples],
          workers=DECODE_WORKERS),
      'names': names, 'numbers': numbers}


def _decode_pairs(builder, split: str, settings: images_lib.Preprocessing) -> dict:
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
                                              workers=DECODE_WORKERS),
      'index': index,
      'labels': np.array([e['label'] for e in examples], np.int32),
      'names': np.array([[e['name1'], e['name2']] for e in examples], dtype=str).reshape(-1, 2),
      'numbers': np.array([[e['number1'], e['number2']] for e in examples],
                          np.int32).reshape(-1, 2),
  }


def _no_pairs(identities: IdentitySet) -> PairSet:
  """A PairSet of no pairs, shaped like pairs of identities' images."""
  return PairSet(np.zeros((0, 2) + identities.images.shape[1:], np.uint8), np.zeros(0, np.int32),
                 np.zeros((0, 2), str), np.zeros((0, 2), np.int32))


def people_index(person_ids: np.ndarray):
  """(starts, counts, by_person) of non-negative integer person ids: image k of person p is
  by_person[starts[p] + k]."""
  by_person = np.argsort(person_ids, kind='stable')
  counts = np.bincount(person_ids)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  return starts, counts, by_person


def _global_batches(order: np.ndarray, batch_size: int, drop_remainder: bool):
  stop = len(order) - len(order) % batch_size if drop_remainder else len(order)
  for start in range(0, stop, batch_size):
    yield order[start:start + batch_size]


def _check_split(split: str):
  if split not in SPLITS:
    raise LfwDataError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")


def _check_sharding(batch_size: int, process_index: int, process_count: int):
  if batch_size < 1 or process_count < 1 or batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} must be a positive multiple of process_count '
                     f'{process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')


def _memory_key(data_config, settings, kind: str, split: str) -> tuple:
  return (str(sources.tfds_data_dir(data_config.tfds_dir)), data_config.get('bundle', ''),
          data_config.variant, settings, kind, split)


def _tfds_lfw():
  """The tfds_lfw module, imported on first use: a config reading a bundle needs no TFDS."""
  from lfw_siamese import tfds_lfw  # pylint: disable=g-import-not-at-top
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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f'.{path.stem}.{os.getpid()}.npz')
    np.savez(partial, **arrays)
    os.replace(partial, path)
  except OSError as error:  # A read-only cache dir costs speed, not correctness.
    print(f'lfw_siamese: cannot write cache {path} ({error})', file=sys.stderr)


def _arrays(dataset) -> list[np.ndarray]:
  """The fields of a PairSet or IdentitySet, uncopied (dataclasses.astuple deep-copies)."""
  return [getattr(dataset, field.name) for field in dataclasses.fields(dataset)]


def _recall(key: tuple):
  """The decoded set cached in memory under key, or None."""
  if key in _MEMORY_CACHE:
    _MEMORY_CACHE.move_to_end(key)
    return _MEMORY_CACHE[key]
  return None


def _remember(key: tuple, dataset):
  """Caches dataset (made read-only: callers share it), dropping the oldest beyond the cap."""
  for array in _arrays(dataset):
    array.flags.writeable = False
  _MEMORY_CACHE[key] = dataset
  size = lambda d: sum(array.nbytes for array in _arrays(d))
  while len(_MEMORY_CACHE) > 1 and sum(map(size, _MEMORY_CACHE.values())) > MEMORY_CACHE_BYTES:
    _MEMORY_CACHE.popitem(last=False)
  return dataset
