"""Synthetic, separable pair and identity sets for the training tests (no faces, no files).

Each fake person is a random blocky pattern; an image of them is that pattern plus noise, so a
same-person pair shares a pattern and a different-person pair does not.
"""

import numpy as np

from lfw_siamese.data import datasets


TrainingData = datasets.TrainingData
# How far params may drift when the same run splits its batches over another number of devices
# or processes: the gradient's partial sums add in another order, and Adam turns rounding in
# near-zero gradients into steps of up to the learning rate (3e-3); some CPUs drift by 2e-5 in
# 32 steps (atol leaves ten times that). The same pairs in other batches drift by 0.02 to 0.14
# (most leaves), a hundred times outside it.
SPLIT_TOLERANCE = {'rtol': 1e-4, 'atol': 2e-4}


def _person_patterns(num_people: int, side: int, rng: np.random.Generator) -> np.ndarray:
  blocks = rng.uniform(0, 1, (num_people, 4, 4))
  return np.kron(blocks, np.ones((side // 4, side // 4)))[..., None]


def _photos(patterns: np.ndarray, people: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  noisy = patterns[people] + rng.normal(0, 0.08, (len(people), *patterns.shape[1:]))
  return np.clip(noisy * 255, 0, 255).astype(np.uint8)


def pair_set(num_pairs: int, *, seed: int, side: int = 32, num_people: int = 40):
  """Half same-person pairs, half different-person pairs, in a random order."""
  rng = np.random.default_rng(seed)
  patterns = _person_patterns(num_people, side, rng)
  labels = (np.arange(num_pairs) % 2).astype(np.int32)
  rng.shuffle(labels)
  first = rng.integers(0, num_people, num_pairs)
  other = (first + rng.integers(1, num_people, num_pairs)) % num_people
  second = np.where(labels == 1, first, other)
  images = np.stack([_photos(patterns, first, rng), _photos(patterns, second, rng)], axis=1)
  names = np.array([[f'P{a}', f'P{b}'] for a, b in zip(first, second)]).reshape(-1, 2)
  return datasets.PairSet(images=images, labels=labels, names=names,
                                numbers=np.ones((num_pairs, 2), np.int32))


def identity_set(num_people: int, images_per_person: int, *, seed: int, side: int = 32,
                 singles: int = 0):
  """`images_per_person` noisy photos of each of `num_people` patterns, then one photo each of
  `singles` more."""
  rng = np.random.default_rng(seed)
  patterns = _person_patterns(num_people + singles, side, rng)
  people = np.concatenate([np.repeat(np.arange(num_people), images_per_person),
                           np.arange(num_people, num_people + singles)]).astype(np.int32)
  numbers = np.concatenate([np.tile(np.arange(1, images_per_person + 1), num_people),
                            np.ones(singles)]).astype(np.int32)
  return datasets.IdentitySet(images=_photos(patterns, people, rng), person_ids=people,
                              names=np.array([f'P{p}' for p in people]), numbers=numbers)


def training_data(num_train: int = 256, *, seed: int = 0, side: int = 32) -> TrainingData:
  """Restricted-paradigm data: train, validation and test pair sets of one distribution."""
  return TrainingData(train=pair_set(num_train, seed=seed, side=side),
                      validation=pair_set(64, seed=seed + 1, side=side),
                      test=pair_set(64, seed=seed + 2, side=side))


def identity_training_data(num_people: int = 128, *, seed: int = 0, side: int = 32,
                           singles: int = 0) -> TrainingData:
  """Unrestricted-paradigm data: identity-labelled train images (`singles` of one-image people
  among them), validation and test pairs."""
  return TrainingData(train=identity_set(num_people, 4, seed=seed, side=side, singles=singles),
                      validation=pair_set(64, seed=seed + 1, side=side),
                      test=pair_set(64, seed=seed + 2, side=side))


def tiny_config(**overrides):
  """configs/tiny.py made to learn the fake sets in a few epochs; overrides use dotted names."""
  from lfw_siamese.configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.model.dropout = 0.0
  config.learning_rate = 3e-3
  config.num_epochs = 3
  config.update_from_flattened_dict(overrides)
  return config


def main(argv):
  """python tests/train_fakes.py WORKDIR [JSON overrides [STAGE]]: tiny on fake data (subprocess
  tests); with STAGE, the process kills itself (SIGKILL) as the first stage naming it starts.

  A multi-process run reads LFW_SIAMESE_COORDINATOR, _NUM_PROCESSES and _PROCESS_ID.
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  from lfw_siamese import sharding, train  # pylint: disable=g-import-not-at-top
  sharding.initialize_distributed(os.environ.get('LFW_SIAMESE_COORDINATOR', ''),
                                  int(os.environ.get('LFW_SIAMESE_NUM_PROCESSES', '1')),
                                  int(os.environ.get('LFW_SIAMESE_PROCESS_ID', '0')))
  config = tiny_config(**(json.loads(argv[2]) if len(argv) > 2 else {}))
  singles = 16 if config.data.singles_per_batch else 0
  data = (identity_training_data(singles=singles) if config.data.paradigm == 'unrestricted'
          else training_data(int(os.environ.get('FAKE_TRAIN_PAIRS', '256'))))
  kill_at = argv[3] if len(argv) > 3 else None

  def on_stage(stage):
    if kill_at and kill_at in stage:
      os.kill(os.getpid(), signal.SIGKILL)

  summary = train.train_and_evaluate(config, argv[1], data=data, on_stage=on_stage)
  print(json.dumps({'devices': summary['devices'], 'processes': summary['processes']}))


if __name__ == '__main__':
  import sys  # pylint: disable=g-import-not-at-top
  main(sys.argv)
