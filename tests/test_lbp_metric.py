"""The metric learned on LBP descriptors: its batches, what it learns, and its arrays."""

import collections

import ml_collections
import numpy as np
import pytest

from lfw_siamese.classic import lbp_metric
from lfw_siamese.evaluation import metrics


def test_batches_hold_two_images_of_each_person_and_visit_everyone_once_an_epoch():
  person_ids = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6])  # 2 and 6: one image.
  batches = lbp_metric.person_batches(person_ids, 2, seed=3)
  seen = collections.Counter()
  for _ in range(2):  # One epoch: 5 people with two or more images, 2 a batch.
    rows, ids = next(batches)
    assert rows.shape == ids.shape == (4,)
    np.testing.assert_array_equal(person_ids[rows], ids)
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    assert rows[0] != rows[1] and rows[2] != rows[3]  # Two different images.
    seen.update(ids[::2].tolist())
  assert set(seen) <= {0, 1, 3, 4, 5} and max(seen.values()) == 1
  again = lbp_metric.person_batches(person_ids, 2, seed=3)
  first = next(again)[0]
  assert np.array_equal(first, next(lbp_metric.person_batches(person_ids, 2, seed=3))[0])
  # More people a batch than there are: a batch of all of them.
  rows, _ = next(lbp_metric.person_batches(person_ids, 64, seed=0))
  assert len(rows) == 10
  with pytest.raises(ValueError, match='two or more people with two or more images'):
    next(lbp_metric.person_batches(np.array([0, 0, 1]), 2, seed=0))


def synthetic_people(rng, people: int, per_person: int = 4):
  """Features whose identity lives in 8 of 48 dimensions, buried under larger noise in the rest."""
  centres = rng.normal(size=(people, 8))
  ids = np.repeat(np.arange(people), per_person)
  signal = centres[ids] + 0.3 * rng.normal(size=(len(ids), 8))
  noise = 3.0 * rng.normal(size=(len(ids), 40))
  return np.concatenate([signal, noise], axis=1).astype(np.float32), ids


def pair_auc(embed, features, ids, rng):
  """AUC of cosines between embedded features over same and different pairs."""
  first = rng.integers(0, len(ids), 400)
  same = np.array([rng.choice(np.flatnonzero((ids == ids[i]) & (np.arange(len(ids)) != i)))
                   for i in first[:200]])
  different = np.array([rng.choice(np.flatnonzero(ids != ids[i])) for i in first[200:]])
  a, b = embed(features[first]), embed(features[np.concatenate([same, different])])
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  labels = np.repeat([1, 0], 200)
  return metrics.roc_auc(np.sum(unit(a) * unit(b), axis=1), labels)


def small_settings(**sizes) -> ml_collections.ConfigDict:
  """lbp_fusion.metric settings for seconds-long fits: the given sizes, fixed rates."""
  return ml_collections.ConfigDict({'dropout': 0.1, 'learning_rate': 3e-3, 'temperature': 0.1,
                                    **sizes})


def test_learns_a_metric_that_holds_for_unseen_people():
  rng = np.random.default_rng(0)
  features, ids = synthetic_people(rng, 60)
  settings = small_settings(steps=300, width=64, dims=16, people_per_batch=16)
  metric = lbp_metric.fit(features, ids, settings, seed=0)
  unseen, unseen_ids = synthetic_people(rng, 30)  # New people.
  raw = pair_auc(lambda x: x, unseen, unseen_ids, np.random.default_rng(1))
  learned = pair_auc(metric.embed, unseen, unseen_ids, np.random.default_rng(1))
  assert raw < 0.6 and learned > 0.85, (raw, learned)
  # Deterministic, and its arrays rebuild it exactly.
  again = lbp_metric.fit(features, ids, settings, seed=0)
  np.testing.assert_array_equal(again.embed(unseen[:5]), metric.embed(unseen[:5]))
  rebuilt = lbp_metric.LbpMetric.from_arrays(metric.arrays())
  np.testing.assert_array_equal(rebuilt.embed(unseen[:5]), metric.embed(unseen[:5]))
  assert metric.embed(unseen[:0]).shape == (0, 16)
  np.testing.assert_allclose(metric.cosines(unseen[:3], unseen[:3]), 1, rtol=1e-5)


def test_versions_of_an_image_train_it_and_the_first_sets_the_standardisation():
  rng = np.random.default_rng(0)
  features, ids = synthetic_people(rng, 20)
  settings = small_settings(steps=20, width=32, dims=8, people_per_batch=8)
  plain = lbp_metric.fit(features, ids, settings)
  copies = lbp_metric.fit(np.stack([features, features]), ids, settings)
  np.testing.assert_array_equal(copies.embed(features[:5]), plain.embed(features[:5]))
  noisy = np.stack([features, features + 5 * rng.normal(size=features.shape).astype(np.float32)])
  augmented = lbp_metric.fit(noisy, ids, settings)
  np.testing.assert_array_equal(augmented.mean, plain.mean)
  np.testing.assert_array_equal(augmented.scale, plain.scale)
  assert not np.allclose(augmented.embed(features[:5]), plain.embed(features[:5]))
