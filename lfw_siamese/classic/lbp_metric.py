"""A metric learned on the LBP descriptors: a small MLP trained like the CNN, by supervised
contrastive loss on the training people, whose embeddings' cosine is one more fused score.

Its input is the fusion stage's LBP embedding (each descriptor's whitened unit vector, side by
side), standardised; the linear whitening treats every direction alike, the MLP learns which
combinations of cells and patterns tell people apart.
"""

import dataclasses
import functools
import itertools
from typing import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from lfw_siamese.data import samplers
from lfw_siamese.model import losses


class MetricMlp(nn.Module):
  """Dropout, a ReLU hidden layer, dropout, a linear embedding."""
  width: int
  dims: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.width, name='hidden')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.dims, name='embedding')(x)


@dataclasses.dataclass(frozen=True)
class LbpMetric:
  """The standardisation and the trained MLP; `embed` gives unit vectors."""
  mean: np.ndarray  # (D,)
  scale: np.ndarray  # (D,)
  params: dict  # MetricMlp's.

  @functools.cached_property
  def _apply(self):
    width, dims = (self.params['hidden']['kernel'].shape[1],
                   self.params['embedding']['kernel'].shape[1])
    return jax.jit(functools.partial(MetricMlp(width, dims).apply, {'params': self.params}))

  def embed(self, lbp_embeddings: np.ndarray) -> np.ndarray:
    """float32 (N, dims) unit vectors of the fusion stage's LBP embeddings (N, D)."""
    inputs = (np.asarray(lbp_embeddings, np.float32) - self.mean) / self.scale
    if not len(inputs):
      return np.zeros((0, self.params['embedding']['kernel'].shape[1]), np.float32)
    outputs = np.asarray(self._apply(jnp.asarray(inputs)))
    return outputs / np.maximum(np.linalg.norm(outputs, axis=1, keepdims=True), 1e-12)

  def cosines(self, lbp_a: np.ndarray, lbp_b: np.ndarray) -> np.ndarray:
    """(N,) cosines of two sides' LBP embeddings under the learned metric."""
    return np.sum(self.embed(lbp_a) * self.embed(lbp_b), axis=1)

  def arrays(self) -> dict[str, np.ndarray]:
    """Everything that defines it, as arrays for np.savez."""
    arrays = {'metric_mean': self.mean, 'metric_scale': self.scale}
    for layer, values in self.params.items():
      arrays.update({f'metric_{layer}_{name}': np.asarray(v) for name, v in values.items()})
    return arrays

  @classmethod
  def from_arrays(cls, arrays) -> 'LbpMetric':
    params = {layer: {name: np.asarray(arrays[f'metric_{layer}_{name}'])
                      for name in ('kernel', 'bias')} for layer in ('hidden', 'embedding')}
    return cls(np.asarray(arrays['metric_mean']), np.asarray(arrays['metric_scale']), params)


def person_batches(person_ids: np.ndarray, people_per_batch: int, *,
                   seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Endless (rows, person ids) batches: people_per_batch people (at most all of them) with two
  images each, every person with two or more images once per epoch, in a seeded order."""
  starts, counts, order = samplers.people_index(np.asarray(person_ids))
  repeated = np.flatnonzero(counts >= 2)
  if len(repeated) < 2:
    raise ValueError(f'the LBP metric needs two or more people with two or more images each; '
                     f'the training set has {len(repeated)}')
  people_per_batch = min(people_per_batch, len(repeated))
  for epoch in itertools.count():
    rng = np.random.default_rng([seed, epoch])
    shuffled = rng.permutation(repeated)
    for start in range(0, len(shuffled) - people_per_batch + 1, people_per_batch):
      chosen = shuffled[start:start + people_per_batch]
      rows = np.stack([order[starts[p] + rng.choice(counts[p], size=2, replace=False)]
                       for p in chosen]).reshape(-1)
      yield rows, np.repeat(chosen, 2)


def fit(lbp_embeddings: np.ndarray, person_ids: np.ndarray, settings, *,
        seed: int = 0) -> LbpMetric:
  """Trains the metric on the training people's LBP embeddings (N, D), or (V, N, D): V versions
  of each image (shifted copies, say), one drawn at random for each image of each batch.

  settings: config.lbp_fusion.metric (steps, width, dims, dropout, learning_rate, temperature,
  people_per_batch).
  """
  features = np.asarray(lbp_embeddings, np.float32)
  versions = features if features.ndim == 3 else features[None]
  mean = versions[0].mean(axis=0)
  spread = versions[0].std(axis=0)
  scale = np.where(spread > 1e-6, spread, 1.0)  # Constant features stay unscaled.
  inputs = jnp.asarray((versions - mean) / scale)
  model = MetricMlp(int(settings.width), int(settings.dims), float(settings.dropout))
  key = jax.random.key(seed)
  params = model.init(key, inputs[0, :1])['params']
  optimizer = optax.adamw(optax.cosine_decay_schedule(float(settings.learning_rate),
                                                      int(settings.steps)), weight_decay=1e-4)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, rows, ids, step_key):
    def loss(params):
      version = jax.random.randint(jax.random.fold_in(step_key, 1), rows.shape, 0,
                                   inputs.shape[0])
      embeddings = model.apply({'params': params}, inputs[version, rows], True,
                               rngs={'dropout': step_key})
      # A row of zeros (every hidden unit dropped or inactive: only narrow MLPs risk it) has no
      # direction, and the norm's gradient there is NaN; the tiny offset gives it one.
      return losses.supervised_contrastive(embeddings + 1e-6, ids, float(settings.temperature))
    grads = jax.grad(loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  batches = person_batches(person_ids, int(settings.people_per_batch), seed=seed)
  steps = tqdm.trange(int(settings.steps), desc='metric on the LBP descriptors', unit='step',
                      leave=False, disable=None)
  for index, (rows, ids) in zip(steps, batches):
    params, opt_state = step(params, opt_state, jnp.asarray(rows), jnp.asarray(ids),
                             jax.random.fold_in(key, index))
  return LbpMetric(mean, scale, jax.tree.map(np.asarray, params))
