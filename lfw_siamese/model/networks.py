"""Twin conv encoder and pair heads in Flax, with pure functions to initialise, encode and score.

Usable from any JAX code with no project state:

  model = networks.build(config.model)
  params = networks.init(model, jax.random.key(0), image_shape=(105, 105, 1))
  embeddings = networks.encode(model, params, images)            # (N, H, W, C) -> (N, D)
  logits = networks.pair_logits(model, params, pairs)            # (N, 2, H, W, C) -> (N,)
  probabilities = networks.pair_probabilities(model, params, pairs)

Every function is pure: jit or vmap it with `functools.partial(networks.encode, model)`.

Both images of a pair go through the encoder as one batch; the layers compute with ops.py's
kernels, written for speed on CPUs as well as accelerators.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lfw_siamese.model import ops

Params = Any

_ACTIVATIONS = {'sigmoid': nn.sigmoid, 'relu': nn.relu, 'none': lambda x: x}
_HEADS = ('weighted_l1', 'l2', 'cosine')


def _initializers(init: str):
  """Kernel and bias initialisers (conv, dense) for an init scheme name."""
  if init == 'koch2015':
    conv = (nn.initializers.normal(1e-2), _shifted_normal(0.5, 1e-2))
    dense = (nn.initializers.normal(2e-1), _shifted_normal(0.5, 1e-2))
    return conv, dense
  if init == 'default':  # Keras' defaults: Glorot-uniform kernels, zero biases.
    pair = (nn.initializers.glorot_uniform(), nn.initializers.zeros)
    return pair, pair
  raise ValueError(f"model.init: expected 'default' or 'koch2015', got {init!r}")


def _shifted_normal(mean: float, stddev: float):
  """An initialiser drawing from N(mean, stddev^2)."""

  def init(key, shape, dtype=jnp.float32):
    return mean + stddev * jax.random.normal(key, shape, dtype)

  return init


class Conv(nn.Module):
  """nn.Conv's parameters ('kernel' HWIO, 'bias') and numbers, computed with `ops.conv2d`."""

  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: str = 'VALID'
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
    y = ops.conv2d(x.astype(self.dtype), kernel.astype(self.dtype), (self.strides, self.strides),
               self.padding)
    return ops.add_bias(y, bias)


class Encoder(nn.Module):
  """Conv blocks (conv, optional GroupNorm, ReLU, optional residual, pool, dropout), then dense."""

  conv_filters: Sequence[int]
  conv_kernels: Sequence[int]
  conv_strides: Sequence[int]
  max_pool: Sequence[bool]
  padding: str = 'VALID'
  residual: bool = False
  norm: str = 'none'
  dropout: float = 0.0
  dense_units: int = 1024
  dense_activation: str = 'sigmoid'
  init: str = 'default'
  compute_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    (conv_kernel_init, conv_bias_init), (dense_kernel_init, dense_bias_init) = _initializers(
        self.init)
    conv = functools.partial(
        Conv, padding=self.padding, dtype=self.compute_dtype,
        kernel_init=conv_kernel_init, bias_init=conv_bias_init)
    x = images
    for i, (filters, kernel, stride, pool) in enumerate(
        zip(self.conv_filters, self.conv_kernels, self.conv_strides, self.max_pool)):
      x = self._norm(conv(filters, (kernel, kernel), strides=stride, name=f'conv{i}')(x),
                     f'norm{i}')
      dropout_key = self.make_rng('dropout') if train and self.dropout > 0 else None
      if self.residual or pool:
        x = nn.relu(x)
        if self.residual:
          y = nn.relu(self._norm(conv(filters, (3, 3), padding='SAME', name=f'res{i}a')(x),
                                 f'res{i}a_norm'))
          y = self._norm(conv(filters, (3, 3), padding='SAME', name=f'res{i}b')(y),
                         f'res{i}b_norm')
          x = nn.relu(x + y)
        if pool:
          x = nn.max_pool(x, (2, 2), strides=(2, 2))
        if dropout_key is not None:
          x = ops.dropout(x, self.dropout, dropout_key)
      else:  # relu and dropout in one pass whose gradient needs no saved mask.
        x = ops.relu_dropout(x, self.dropout, dropout_key)
      x = x.astype(self.compute_dtype)  # Activations in the compute dtype between layers.
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.dense_units, dtype=self.compute_dtype, kernel_init=dense_kernel_init,
                 bias_init=dense_bias_init, name='dense', dot_general=ops.dense_dot_general)(x)
    return _ACTIVATIONS[self.dense_activation](x.astype(jnp.float32))

  def _norm(self, x: jax.Array, name: str) -> jax.Array:
    if self.norm == 'none':
      return x
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if x.shape[-1] % g == 0)
    return nn.GroupNorm(num_groups=groups, dtype=self.compute_dtype, name=name)(x)


class PairHead(nn.Module):
  """Turns two embeddings into a same-person logit."""

  kind: str = 'weighted_l1'

  @nn.compact
  def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
    if self.kind == 'weighted_l1':  # Koch et al.: sigmoid(sum_j alpha_j |a_j - b_j| + bias).
      return nn.Dense(1, kernel_init=nn.initializers.glorot_uniform(), name='weights')(
          jnp.abs(a - b))[..., 0]
    if self.kind == 'l2':
      distance = jnp.sum(jnp.square(a - b), axis=-1)
    elif self.kind == 'cosine':
      cosine = jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
                                     + 1e-8)
      distance = 1.0 - cosine
    else:
      raise ValueError(f'model.head: expected one of {_HEADS}, got {self.kind!r}')
    # A learned affine map, decreasing in the distance: logit = bias - exp(log_scale) * distance.
    log_scale = self.param('log_scale', nn.initializers.zeros, ())
    bias = self.param('bias', nn.initializers.ones, ())
    return bias - jnp.exp(log_scale) * distance


class SiameseNet(nn.Module):
  """One encoder shared by both images of a pair (run on them as one batch), then a head."""

  encoder: Encoder
  head: PairHead

  def __call__(self, pairs: jax.Array, train: bool = False) -> jax.Array:
    return self.head(*jnp.unstack(self.embed_pairs(pairs, train), axis=1))

  def embed_pairs(self, pairs: jax.Array, train: bool = False) -> jax.Array:
    """Maps (N, 2, H, W, C) pairs to (N, 2, D) embeddings with the shared encoder."""
    # What vmap over the pair axis computes, as one batch of 2N images: vmap's batching of the
    # kernel gradients made the reference step 1.5x slower on CPU (benchmarks/README.md).
    n = pairs.shape[0]
    embeddings = self.encoder(pairs.reshape(2 * n, *pairs.shape[2:]), train)
    return embeddings.reshape(n, 2, -1)

  def encode(self, images: jax.Array, train: bool = False) -> jax.Array:
    return self.encoder(images, train)

  def score_embeddings(self, a: jax.Array, b: jax.Array) -> jax.Array:
    return self.head(a, b)


def build(model_config: ml_collections.ConfigDict) -> SiameseNet:
  """Builds the (stateless, hashable) network that a model config describes (config_check checks
  its fields)."""
  dtypes = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  encoder = Encoder(
      conv_filters=tuple(model_config.conv_filters),
      conv_kernels=tuple(model_config.conv_kernels),
      conv_strides=tuple(model_config.conv_strides),
      max_pool=tuple(bool(p) for p in model_config.max_pool),
      padding=model_config.padding,
      residual=model_config.residual,
      norm=model_config.norm,
      dropout=model_config.dropout,
      dense_units=model_config.dense_units,
      dense_activation=model_config.dense_activation,
      init=model_config.init,
      compute_dtype=dtypes[model_config.compute_dtype])
  return SiameseNet(encoder=encoder, head=PairHead(kind=model_config.head))


def unit_range(images: jax.Array) -> jax.Array:
  """uint8 pixels to float32 in [0, 1], on device; float images are taken as already scaled."""
  return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


def init(model: SiameseNet, key: jax.Array, image_shape: Sequence[int]) -> Params:
  """Initialises parameters for images of shape (H, W, C)."""
  pairs = jnp.zeros((1, 2, *image_shape), jnp.float32)
  return model.init({'params': key}, pairs)['params']


def encode(model: SiameseNet, params: Params, images: jax.Array, *, train: bool = False,
           dropout_key: jax.Array | None = None) -> jax.Array:
  """Embeds (N, H, W, C) images in [0, 1] into (N, D) float32 vectors."""
  rngs = {'dropout': dropout_key} if train else {}
  return model.apply({'params': params}, images, train, method=SiameseNet.encode, rngs=rngs)


def embed_pairs(model: SiameseNet, params: Params, pairs: jax.Array, *, train: bool = False,
                dropout_key: jax.Array | None = None) -> jax.Array:
  """Embeds (N, 2, H, W, C) pairs into (N, 2, D), both sides through the same weights."""
  rngs = {'dropout': dropout_key} if train else {}
  return model.apply({'params': params}, pairs, train, method=SiameseNet.embed_pairs, rngs=rngs)


def score_embeddings(model: SiameseNet, params: Params, a: jax.Array, b: jax.Array) -> jax.Array:
  """Same-person logits for two batches of embeddings."""
  return model.apply({'params': params}, a, b, method=SiameseNet.score_embeddings)


def pair_logits(model: SiameseNet, params: Params, pairs: jax.Array, *, train: bool = False,
                dropout_key: jax.Array | None = None) -> jax.Array:
  """Same-person logits, shape (N,), for (N, 2, H, W, C) pairs."""
  rngs = {'dropout': dropout_key} if train else {}
  return model.apply({'params': params}, pairs, train, rngs=rngs)


def pair_probabilities(model: SiameseNet, params: Params, pairs: jax.Array) -> jax.Array:
  """Same-person probabilities, shape (N,), for (N, 2, H, W, C) pairs."""
  return jax.nn.sigmoid(pair_logits(model, params, pairs))


def count_params(params: Params) -> int:
  """Number of scalars in a parameter tree."""
  return sum(x.size for x in jax.tree.leaves(params))
