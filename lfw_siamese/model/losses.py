"""Losses: cross-entropy on pair logits; contrastive, triplet and supervised-contrastive losses
mined in a batch; a margin softmax over the training people."""

import jax
import jax.numpy as jnp
import optax


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean sigmoid cross-entropy of same-person logits (N,) against 0/1 labels (N,)."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)))


def pair_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of pairs whose logit is on the side of 0 that its label says (probability 0.5)."""
  return jnp.mean((logits >= 0).astype(jnp.float32) == labels.astype(jnp.float32))


def same_person_masks(person_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, B) masks of in-batch positive pairs (same person, i != j) and negative pairs."""
  same = person_ids[:, None] == person_ids[None, :]
  not_self = ~jnp.eye(person_ids.shape[0], dtype=bool)
  return same & not_self, ~same


def pairwise_distances(embeddings: jax.Array) -> jax.Array:
  """(B, B) Euclidean distances between rows, with a gradient that stays finite at zero."""
  squared = jnp.sum(jnp.square(embeddings[:, None, :] - embeddings[None, :, :]), axis=-1)
  return jnp.sqrt(jnp.maximum(squared, 1e-12))


def _normalise(embeddings: jax.Array) -> jax.Array:
  # Metric losses work on the unit sphere so that the margin does not depend on the embedding size.
  return embeddings / (jnp.linalg.norm(embeddings, axis=-1, keepdims=True) + 1e-8)


def _masked_mean(values: jax.Array, mask: jax.Array, axis: int | None = None) -> jax.Array:
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask, axis=axis) / jnp.maximum(jnp.sum(mask, axis=axis), 1.0)


def contrastive(embeddings: jax.Array, person_ids: jax.Array, margin: float) -> jax.Array:
  """Contrastive loss over every in-batch pair, positives and negatives weighted equally.

  Positives pull together (d^2); negatives push apart until the margin (max(0, margin - d)^2).
  Embeddings are L2-normalised first, so the margin lives in [0, 2].
  """
  distances = pairwise_distances(_normalise(embeddings))
  positive, negative = same_person_masks(person_ids)
  pull = _masked_mean(jnp.square(distances), positive)
  push = _masked_mean(jnp.square(jax.nn.relu(margin - distances)), negative)
  return 0.5 * (pull + push)


def triplet_batch_hard(embeddings: jax.Array, person_ids: jax.Array, margin: float) -> jax.Array:
  """Batch-hard triplet loss (Hermans et al. 2017): farthest positive vs nearest negative.

  Anchors without a positive in the batch are left out. Embeddings are L2-normalised first.
  """
  distances = pairwise_distances(_normalise(embeddings))
  positive, negative = same_person_masks(person_ids)
  hardest_positive = jnp.max(jnp.where(positive, distances, -jnp.inf), axis=1)
  hardest_negative = jnp.min(jnp.where(negative, distances, jnp.inf), axis=1)
  has_triplet = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  losses = jax.nn.relu(margin + hardest_positive - hardest_negative)
  return _masked_mean(jnp.where(has_triplet, losses, 0.0), has_triplet)


def supervised_contrastive(embeddings: jax.Array, person_ids: jax.Array,
                           temperature: float) -> jax.Array:
  """Supervised contrastive loss (Khosla et al. 2020): each image against every other in the batch.

  For each anchor, the mean over its positives of -log softmax(cosine / temperature), the softmax
  taken over every other image in the batch. Anchors without a positive are left out.
  """
  unit = _normalise(embeddings)
  positive, negative = same_person_masks(person_ids)
  similarities = jnp.where(positive | negative, unit @ unit.T / temperature, -jnp.inf)
  log_probabilities = similarities - jax.nn.logsumexp(similarities, axis=1, keepdims=True)
  # The where keeps the diagonal's -inf out of the sum (-inf * 0 is nan).
  per_anchor = _masked_mean(jnp.where(positive, log_probabilities, 0.0), positive, axis=1)
  has_positive = jnp.any(positive, axis=1)
  return -_masked_mean(per_anchor, has_positive)


def cosface(embeddings: jax.Array, proxies: jax.Array, person_ids: jax.Array, margin: float,
            scale: float) -> jax.Array:
  """CosFace (Wang et al. 2018): softmax over one learned proxy per person (P, D) of scale x cosine,
  the true person's cosine less the margin."""
  cosines = _normalise(embeddings) @ _normalise(proxies).T
  is_true = jax.nn.one_hot(person_ids, proxies.shape[0], dtype=cosines.dtype)
  logits = scale * (cosines - margin * is_true)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, person_ids))


def in_batch_pair_bce(pair_logits: jax.Array, person_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Balanced BCE and accuracy of (B, B) head logits over in-batch positive and negative pairs.

  Positives and negatives count half each, so the head is calibrated for balanced test pairs.
  """
  positive, negative = same_person_masks(person_ids)
  same_loss = optax.sigmoid_binary_cross_entropy(pair_logits, jnp.ones_like(pair_logits))
  different_loss = optax.sigmoid_binary_cross_entropy(pair_logits, jnp.zeros_like(pair_logits))
  loss = 0.5 * (_masked_mean(same_loss, positive) + _masked_mean(different_loss, negative))
  accuracy = 0.5 * (_masked_mean((pair_logits >= 0).astype(jnp.float32), positive)
                    + _masked_mean((pair_logits < 0).astype(jnp.float32), negative))
  return loss, accuracy


METRIC_LOSSES = {'contrastive': contrastive, 'triplet': triplet_batch_hard,
                 'supcon': supervised_contrastive}
