"""Losses against hand computations and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfw_siamese.model import losses


def test_binary_cross_entropy_and_accuracy_match_hand_values():
  logits = jnp.array([2.0, -1.0, 0.5, -3.0])
  labels = jnp.array([1, 0, 0, 1])
  probabilities = 1 / (1 + np.exp(-np.array(logits)))
  expected = -np.mean([np.log(probabilities[0]), np.log(1 - probabilities[1]),
                       np.log(1 - probabilities[2]), np.log(probabilities[3])])
  assert float(losses.binary_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
  assert float(losses.pair_accuracy(logits, labels)) == 0.5


def test_masks_exclude_self_pairs():
  positive, negative = losses.same_person_masks(jnp.array([0, 0, 1]))
  np.testing.assert_array_equal(positive, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(negative, [[0, 0, 1], [0, 0, 1], [1, 1, 0]])


def _unit(*vector):
  vector = np.array(vector, np.float32)
  return vector / np.linalg.norm(vector)


def test_contrastive_is_zero_for_collapsed_positives_and_far_negatives():
  embeddings = jnp.array([_unit(1, 0), _unit(1, 0), _unit(-1, 0), _unit(-1, 0)])
  ids = jnp.array([0, 0, 1, 1])
  assert float(losses.contrastive(embeddings, ids, margin=1.0)) == pytest.approx(0.0, abs=1e-6)
  # Negatives at distance sqrt(2) < margin 2 are pushed: 0.5 * (2 - sqrt(2))^2.
  orthogonal = jnp.array([_unit(1, 0), _unit(1, 0), _unit(0, 1), _unit(0, 1)])
  assert float(losses.contrastive(orthogonal, ids, margin=2.0)) == pytest.approx(
      0.5 * (2 - np.sqrt(2)) ** 2, rel=1e-5)


def test_triplet_batch_hard_matches_brute_force():
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(8, 5)).astype(np.float32)
  ids = np.array([0, 0, 1, 1, 1, 2, 3, 3])
  unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  distance = lambda i, j: np.linalg.norm(unit[i] - unit[j])
  per_anchor = []
  for anchor in range(8):
    positives = [j for j in range(8) if ids[j] == ids[anchor] and j != anchor]
    negatives = [j for j in range(8) if ids[j] != ids[anchor]]
    if positives:
      per_anchor.append(max(0.0, 0.5 + max(distance(anchor, p) for p in positives)
                            - min(distance(anchor, n) for n in negatives)))
  got = losses.triplet_batch_hard(jnp.asarray(embeddings), jnp.asarray(ids), margin=0.5)
  assert float(got) == pytest.approx(np.mean(per_anchor), rel=1e-5)


def test_supervised_contrastive_matches_brute_force():
  rng = np.random.default_rng(1)
  embeddings = rng.normal(size=(7, 4)).astype(np.float32)
  ids = np.array([0, 0, 0, 1, 1, 2, 3])
  unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  per_anchor = []
  for anchor in range(7):
    others = [j for j in range(7) if j != anchor]
    positives = [j for j in others if ids[j] == ids[anchor]]
    if positives:
      logits = {j: unit[anchor] @ unit[j] / 0.2 for j in others}
      log_normaliser = np.log(sum(np.exp(v) for v in logits.values()))
      per_anchor.append(-np.mean([logits[p] - log_normaliser for p in positives]))
  got = losses.supervised_contrastive(jnp.asarray(embeddings), jnp.asarray(ids), temperature=0.2)
  assert float(got) == pytest.approx(np.mean(per_anchor), rel=1e-5)


def test_metric_losses_have_finite_gradients_with_duplicate_embeddings():
  embeddings = jnp.ones((4, 3))
  ids = jnp.array([0, 0, 1, 1])
  for loss in losses.METRIC_LOSSES.values():
    gradient = jax.grad(lambda e: loss(e, ids, 1.0))(embeddings)
    assert np.all(np.isfinite(gradient))


def test_in_batch_pair_bce_weights_positives_and_negatives_equally():
  ids = jnp.array([0, 0, 1, 2, 3, 4])  # 2 positive (ordered) pairs, 28 negative ones.
  logits = jnp.where(ids[:, None] == ids[None, :], 3.0, -3.0)
  loss, accuracy = losses.in_batch_pair_bce(logits, ids)
  assert float(accuracy) == 1.0
  assert float(loss) == pytest.approx(np.log1p(np.exp(-3.0)), rel=1e-5)
  # Getting every positive wrong costs half the accuracy, however few positives there are.
  _, wrong_positives = losses.in_batch_pair_bce(jnp.full_like(logits, -3.0), ids)
  assert float(wrong_positives) == pytest.approx(0.5)


def test_cosface_matches_brute_force():
  rng = np.random.default_rng(2)
  embeddings = rng.normal(size=(5, 4)).astype(np.float32)
  proxies = rng.normal(size=(3, 4)).astype(np.float32)
  ids = np.array([0, 2, 1, 2, 0])
  unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  centres = proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
  expected = []
  for row, person in zip(unit, ids):
    logits = 8.0 * (centres @ row)
    logits[person] -= 8.0 * 0.3
    expected.append(np.log(np.sum(np.exp(logits))) - logits[person])
  got = losses.cosface(jnp.asarray(embeddings), jnp.asarray(proxies), jnp.asarray(ids), margin=0.3,
                       scale=8.0)
  assert float(got) == pytest.approx(np.mean(expected), rel=1e-5)
