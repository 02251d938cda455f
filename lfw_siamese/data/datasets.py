"""The data types of the pipeline (pairs, identities, a run's three sets) and ways to split them."""

import dataclasses
from typing import Sequence

import numpy as np

_VALIDATION_STREAM = 1  # np.random.default_rng([seed, _VALIDATION_STREAM]) picks validation.


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
    return PairSet(*(array[indices] for array in arrays(self)))


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
  return PairSet(*(np.concatenate(arrays) for arrays in zip(*map(arrays, pair_sets))))


def concatenate_identities(identity_sets: Sequence[IdentitySet]) -> IdentitySet:
  """One IdentitySet of all images (person ids re-made dense over the union)."""
  if len(identity_sets) == 1:
    return identity_sets[0]
  return identity_set(np.concatenate([s.images for s in identity_sets]),
                      np.concatenate([s.names for s in identity_sets]),
                      np.concatenate([s.numbers for s in identity_sets]))


def no_pairs(identities: IdentitySet) -> PairSet:
  """A PairSet of no pairs, shaped like pairs of identities' images."""
  return PairSet(np.zeros((0, 2) + identities.images.shape[1:], np.uint8), np.zeros(0, np.int32),
                 np.zeros((0, 2), str), np.zeros((0, 2), np.int32))


def arrays(dataset) -> list[np.ndarray]:
  """The fields of a PairSet or IdentitySet, uncopied (dataclasses.astuple deep-copies)."""
  return [getattr(dataset, field.name) for field in dataclasses.fields(dataset)]
