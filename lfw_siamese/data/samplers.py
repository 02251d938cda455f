"""Training batches: shuffled pairs, identity pairs and P x K identity batches, split by process.

Random streams: every draw uses `np.random.default_rng([seed, epoch, STREAM])`, so the same seed
and epoch give the same batches after a restart, whatever ran before.
"""

from typing import Iterator

import numpy as np

from lfw_siamese.data.datasets import IdentitySet
from lfw_siamese.data.datasets import no_pairs
from lfw_siamese.data.datasets import PairSet

_SHUFFLE_STREAM, _PAIR_STREAM, _IDENTITY_STREAM = 2, 3, 4


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
    return no_pairs(identities)
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


def _check_sharding(batch_size: int, process_index: int, process_count: int):
  if batch_size < 1 or process_count < 1 or batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} must be a positive multiple of process_count '
                     f'{process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
