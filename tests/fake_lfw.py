"""A small fake LFW (generated faces, pair and people lists) laid out as upstream, for tests."""

import dataclasses
import os
import pathlib
import shutil
import tarfile
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

IMAGE_SIDE = 250
NUM_FOLDS = 10
# Where each variant's images live (folder and archive) in an upstream layout.
VARIANT_FOLDERS = {
    'original': ('lfw', 'lfw.tgz'),
    'funneled': ('lfw_funneled', 'lfw-funneled.tgz'),
    'deepfunneled': ('lfw-deepfunneled', 'lfw-deepfunneled.tgz'),
    'lfwa': ('lfw2', 'lfwa.tar.gz'),
}
# Images per person, cycled: some people have one image (mismatched pairs only), as in LFW.
_IMAGES_PER_PERSON = (3, 1, 2, 4, 1, 2)


@dataclasses.dataclass(frozen=True)
class FakeLfw:
  """What make_fake_lfw wrote: names, image counts and the lists' people, for assertions."""
  root: pathlib.Path | None
  counts: Mapping[str, int]
  dev_train_people: Sequence[str]
  dev_test_people: Sequence[str]
  fold_people: Sequence[Sequence[str]]


def person_names(num_people: int) -> list[str]:
  """Sorted fake names in LFW's style (some with hyphens)."""
  names = [f'Person_{i:03d}' if i % 7 else f'Anne-Marie_Fake_{i:03d}' for i in range(num_people)]
  return sorted(names)


def plan_people(people: int = 30) -> FakeLfw:
  """Who a fake LFW of `people` people holds: image counts, View 1 people and View 2 folds."""
  if people < 3 * NUM_FOLDS:
    raise ValueError(f'people: need at least {3 * NUM_FOLDS} for ten folds, got {people}')
  names = person_names(people)
  counts = {name: _IMAGES_PER_PERSON[i % len(_IMAGES_PER_PERSON)] for i, name in enumerate(names)}
  return FakeLfw(
      root=None, counts=counts,
      dev_train_people=[name for i, name in enumerate(names) if i % 3 != 2],
      dev_test_people=[name for i, name in enumerate(names) if i % 3 == 2],
      fold_people=[[name for i, name in enumerate(names) if i % NUM_FOLDS == k]
                   for k in range(NUM_FOLDS)])


def face_image(person: int, number: int, *, grayscale: bool = False) -> Image.Image:
  """A 250x250 image: a per-person grating and face-like ellipse, shifted and noised per image."""
  person_rng = np.random.default_rng([person, 7])
  image_rng = np.random.default_rng([person, number, 11])
  angle, outer_angle = person_rng.uniform(0, np.pi, size=2)
  frequency = person_rng.uniform(0.04, 0.12)
  face_level = person_rng.uniform(70, 190)
  tint = person_rng.uniform(0.6, 1.0, size=3)
  shift = image_rng.integers(-4, 5, size=2)
  y, x = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE].astype(np.float32) - IMAGE_SIDE / 2
  y, x = y - shift[0], x - shift[1]
  inner = np.sin(frequency * (x * np.cos(angle) + y * np.sin(angle)))
  outer = np.sin(0.05 * (x * np.cos(outer_angle) + y * np.sin(outer_angle)))
  face = (x / 55) ** 2 + (y / 70) ** 2 <= 1
  luma = np.where(face, face_level + 45 * inner, 128 + 40 * outer)
  luma = luma + image_rng.normal(0, 10, size=luma.shape)
  if grayscale:
    return Image.fromarray(np.clip(luma, 0, 255).astype(np.uint8), 'L')
  rgb = luma[..., None] * tint + image_rng.normal(0, 4, size=(IMAGE_SIDE, IMAGE_SIDE, 3))
  return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), 'RGB')


def make_fake_lfw(
    root,
    *,
    variant: str = 'deepfunneled',
    people: int = 30,
    grayscale: bool = False,
    archive: bool = False,
    dev_train_pairs: int = 20,
    dev_test_pairs: int = 10,
    fold_pairs: int = 5,
    seed: int = 0,
) -> pathlib.Path:
  """Writes a fake LFW under root and returns root.

  Args:
    root: folder to write into (created).
    variant: which upstream layout the images take (see VARIANT_FOLDERS).
    people: number of people (at least 30); a third have one image, the others 2 to 4.
    grayscale: store 1-channel JPEGs (as LFW-a) instead of RGB.
    archive: store the images as the upstream archive instead of a folder.
    dev_train_pairs, dev_test_pairs, fold_pairs: matched pairs (and as many mismatched) in
      pairsDevTrain.txt, pairsDevTest.txt and each of pairs.txt's ten folds.
    seed: seeds the choice of pairs.
  """
  return write_fake_lfw(
      root, variant=variant, people=people, grayscale=grayscale, archive=archive,
      dev_train_pairs=dev_train_pairs, dev_test_pairs=dev_test_pairs, fold_pairs=fold_pairs,
      seed=seed).root


def write_fake_lfw(root, *, variant='deepfunneled', people=30, grayscale=False, archive=False,
                   dev_train_pairs=20, dev_test_pairs=10, fold_pairs=5, seed=0) -> FakeLfw:
  """As make_fake_lfw, returning what was written."""
  plan = plan_people(people)
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  folder, archive_name = VARIANT_FOLDERS[variant]
  names, counts = sorted(plan.counts), plan.counts
  for i, name in enumerate(names):
    (root / folder / name).mkdir(parents=True, exist_ok=True)
    for number in range(1, counts[name] + 1):
      path = root / folder / name / f'{name}_{number:04d}.jpg'
      face_image(i, number, grayscale=grayscale).save(path, quality=90)
  if archive:
    with tarfile.open(root / archive_name, 'w:gz', compresslevel=1) as tar:
      tar.add(root / folder, arcname=folder)
    shutil.rmtree(root / folder)
  dev_train, dev_test, folds = plan.dev_train_people, plan.dev_test_people, plan.fold_people
  rng = np.random.default_rng(seed)
  _write_pair_list(root / 'pairsDevTrain.txt', f'{dev_train_pairs}',
                   [_pairs(dev_train, counts, dev_train_pairs, rng)])
  _write_pair_list(root / 'pairsDevTest.txt', f'{dev_test_pairs}',
                   [_pairs(dev_test, counts, dev_test_pairs, rng)])
  _write_pair_list(root / 'pairs.txt', f'{NUM_FOLDS}\t{fold_pairs}',
                   [_pairs(fold, counts, fold_pairs, rng) for fold in folds])
  _write_people_list(root / 'peopleDevTrain.txt', [dev_train], counts, folds_header=False)
  _write_people_list(root / 'peopleDevTest.txt', [dev_test], counts, folds_header=False)
  _write_people_list(root / 'people.txt', folds, counts, folds_header=True)
  (root / 'lfw-names.txt').write_text(''.join(f'{name}\t{counts[name]}\n' for name in names))
  return dataclasses.replace(plan, root=root)


def _pairs(people: Sequence[str], counts, num_matched: int, rng) -> list[str]:
  """num_matched matched then as many mismatched pair lines among people."""
  repeated = [name for name in people if counts[name] >= 2]
  lines = []
  for k in range(num_matched):
    name = repeated[k % len(repeated)]
    i, j = sorted(rng.choice(np.arange(1, counts[name] + 1), size=2, replace=False))
    lines.append(f'{name}\t{i}\t{j}')
  for _ in range(num_matched):
    first, second = sorted(rng.choice(len(people), size=2, replace=False))
    name1, name2 = people[first], people[second]
    i, j = rng.integers(1, counts[name1] + 1), rng.integers(1, counts[name2] + 1)
    lines.append(f'{name1}\t{i}\t{name2}\t{j}')
  return lines


def _write_pair_list(path: pathlib.Path, header: str, folds: Sequence[Sequence[str]]):
  lines = [header] + [line for fold in folds for line in fold]
  path.write_text('\n'.join(lines) + '\n')


def _write_people_list(path: pathlib.Path, folds, counts, *, folds_header: bool):
  lines = [f'{len(folds)}'] if folds_header else []
  for fold in folds:
    lines.append(f'{len(fold)}')
    lines.extend(f'{name}\t{counts[name]}' for name in fold)
  path.write_text('\n'.join(lines) + '\n')


def image_path(root, variant: str, name: str, number: int) -> pathlib.Path:
  """Where a fake (or real, extracted) image lives."""
  return pathlib.Path(root) / VARIANT_FOLDERS[variant][0] / name / f'{name}_{number:04d}.jpg'


def replace_line(path, line_number: int, text: str):
  """Replaces one line (1-based) of a text file, to make a malformed list."""
  lines = pathlib.Path(path).read_text().splitlines()
  lines[line_number - 1] = text
  pathlib.Path(path).write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
  import sys
  print(make_fake_lfw(sys.argv[1] if len(sys.argv) > 1 else os.getcwd()))
