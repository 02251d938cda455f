"""A portable file of decoded, preprocessed LFW: train and evaluate without TFDS or the LFW archive.

`python -m lfw_siamese.data export --config CONFIG --output FILE` writes one compressed .npz
holding every distinct image once (as the config preprocesses it) and, for each split, its pairs
and its people as indices into those images. A config with `data.bundle = FILE` then reads its
pairs and identities from the file alone: no TFDS, no LFW folder, no decoding (e.g. on a machine
that only has JAX).
"""

import functools
import os

import numpy as np

from lfw_siamese import files
from lfw_siamese.data.lists import LfwDataError

FORMAT = 1


def write(path: str, *, preprocessing: str, variant: str, pairs: dict, people: dict) -> dict:
  """Writes the bundle; returns {'images': distinct images, 'bytes': file size}.

  Args:
    path: the .npz file to write (atomically).
    preprocessing: images.Preprocessing.key() of the images.
    variant: the LFW variant they were decoded from.
    pairs: split -> datasets.PairSet.
    people: split -> datasets.IdentitySet.
  """
  table: dict[tuple[str, int], int] = {}  # (name, number) -> row of `images`.
  rows: list[np.ndarray] = []

  def indices(images, names, numbers) -> np.ndarray:
    out = np.empty(len(names), np.int32)
    for i, key in enumerate(zip(names.tolist(), numbers.tolist())):
      if key not in table:
        table[key] = len(rows)
        rows.append(images[i])
      out[i] = table[key]
    return out

  arrays = {'format': np.asarray(FORMAT), 'preprocessing': np.asarray(preprocessing),
            'variant': np.asarray(variant)}
  for split, pair_set in pairs.items():
    shape = pair_set.images.shape
    flat = pair_set.images.reshape(shape[0] * 2, *shape[2:])
    arrays[f'pairs.{split}.index'] = indices(flat, pair_set.names.reshape(-1),
                                             pair_set.numbers.reshape(-1)).reshape(-1, 2)
    arrays[f'pairs.{split}.labels'] = np.asarray(pair_set.labels, np.int32)
  for split, identities in people.items():
    arrays[f'people.{split}.index'] = indices(identities.images, identities.names,
                                              identities.numbers)
  names, numbers = zip(*table) if table else ((), ())
  arrays.update(images=np.stack(rows), image_names=np.asarray(names, dtype=str),
                image_numbers=np.asarray(numbers, np.int32))
  with files.atomic_write(path, 'wb') as f:
    np.savez_compressed(f, **arrays)
  return {'images': len(rows), 'bytes': os.path.getsize(path)}


@functools.lru_cache(maxsize=2)
def _read(path: str, modified: float) -> dict:
  del modified  # Part of the cache key only: a rewritten file is read again.
  try:
    with np.load(path, allow_pickle=False) as arrays:
      contents = {name: arrays[name] for name in arrays.files}
  except (OSError, ValueError, EOFError) as error:
    raise LfwDataError(f'data.bundle: {path} is not a readable .npz bundle ({error})') from None
  if contents.get('format', np.asarray(-1)).item() != FORMAT:
    raise LfwDataError(f'data.bundle: {path} is not a bundle of format {FORMAT} (written by '
                       f'`python -m lfw_siamese.data export`)')
  return contents


def _contents(path: str, preprocessing: str, variant: str) -> dict:
  """The bundle's arrays, after checking that they are what the config asks for."""
  try:
    modified = os.stat(path).st_mtime
  except OSError:
    raise LfwDataError(f'data.bundle: {path} does not exist') from None
  contents = _read(path, modified)
  for field, wanted in (('preprocessing', preprocessing), ('variant', variant)):
    held = str(contents[field])
    if held != wanted:
      raise LfwDataError(f'data.bundle: {path} holds {field} {held!r}, but the config asks for '
                         f'{wanted!r}; export a bundle with this config')
  return contents


def _split(contents: dict, path: str, kind: str, split: str) -> str:
  prefix = f'{kind}.{split}.'
  if prefix + 'index' not in contents:
    held = sorted({name.split('.')[1] for name in contents if name.startswith(f'{kind}.')})
    raise LfwDataError(f"data.bundle: {path} has no {kind} of split {split!r} (it holds: "
                       f"{', '.join(held) or 'none'})")
  return prefix


def read_pairs(path: str, split: str, *, preprocessing: str, variant: str) -> dict:
  """{'unique_images', 'index', 'labels', 'names', 'numbers'}, as the disk cache holds pairs."""
  contents = _contents(path, preprocessing, variant)
  prefix = _split(contents, path, 'pairs', split)
  index = contents[prefix + 'index']
  return {'unique_images': contents['images'], 'index': index,
          'labels': contents[prefix + 'labels'], 'names': contents['image_names'][index],
          'numbers': contents['image_numbers'][index]}


def read_people(path: str, split: str, *, preprocessing: str, variant: str) -> dict:
  """{'images', 'names', 'numbers'}, as the disk cache holds a people split."""
  contents = _contents(path, preprocessing, variant)
  index = contents[_split(contents, path, 'people', split) + 'index']
  return {'images': contents['images'][index], 'names': contents['image_names'][index],
          'numbers': contents['image_numbers'][index]}


def num_pairs(path: str, split: str, *, preprocessing: str, variant: str) -> int:
  """How many pairs the split holds."""
  contents = _contents(path, preprocessing, variant)
  return len(contents[_split(contents, path, 'pairs', split) + 'labels'])
