"""MTCNN's three networks (Zhang et al. 2016) in Flax, with the `mtcnn` package's weights.

P-Net proposes faces over a whole image (fully convolutional, stride 2, 12x12 windows), R-Net
rescores and refines 24x24 crops of its proposals, O-Net does the same on 48x48 crops and adds
five landmarks. Inputs are RGB scaled as (x - 127.5) / 128. Every function here is pure.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lfw_siamese.detection import weights as weights_lib

Params = Any


def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
  """Parametric ReLU with a learned slope per channel."""
  return jnp.where(x >= 0, x, alpha * x)


class _Stage(nn.Module):
  """Conv + PReLU (+ max-pool) blocks, then the network's heads."""

  convs: tuple[tuple[int, int, tuple[int, int, str] | None], ...]  # (features, kernel, pool)
  dense: int | None  # None: fully convolutional (P-Net); else the flattened crop's hidden layer
  heads: tuple[int, ...]  # box offsets (4), [landmarks (10)], face/non-face logits (2)

  @nn.compact
  def __call__(self, x):
    for i, (features, kernel, pool) in enumerate(self.convs):
      x = nn.Conv(features, (kernel, kernel), padding='VALID', name=f'conv{i + 1}')(x)
      x = prelu(x, self.param(f'prelu{i + 1}', nn.initializers.zeros, (features,)))
      if pool:
        window, stride, padding = pool
        x = nn.max_pool(x, (window, window), (stride, stride), padding)
    if self.dense is None:
      outputs = [nn.Conv(n, (1, 1), name=f'head{i + 1}')(x) for i, n in enumerate(self.heads)]
    else:
      # The weights came from Caffe by way of Keras, which flattened the crop's width first.
      x = jnp.transpose(x, (0, 2, 1, 3)).reshape(x.shape[0], -1)
      x = nn.Dense(self.dense, name='fc')(x)
      x = prelu(x, self.param('prelu_fc', nn.initializers.zeros, (self.dense,)))
      outputs = [nn.Dense(n, name=f'head{i + 1}')(x) for i, n in enumerate(self.heads)]
    outputs[-1] = jax.nn.softmax(outputs[-1], axis=-1)[..., 1]  # The face probability.
    return tuple(outputs)


PNET = _Stage(convs=((10, 3, (2, 2, 'SAME')), (16, 3, None), (32, 3, None)), dense=None,
              heads=(4, 2))
RNET = _Stage(convs=((28, 3, (3, 2, 'SAME')), (48, 3, (3, 2, 'VALID')), (64, 2, None)),
              dense=128, heads=(4, 2))
ONET = _Stage(convs=((32, 3, (3, 2, 'SAME')), (64, 3, (3, 2, 'VALID')), (64, 3, (2, 2, 'SAME')),
                     (128, 2, None)), dense=256, heads=(4, 10, 2))
MODELS = {'pnet': PNET, 'rnet': RNET, 'onet': ONET}
INPUT_SIDE = {'rnet': 24, 'onet': 48}


def params_from_keras(name: str, arrays: list[np.ndarray]) -> Params:
  """Flax params of network `name` from its Keras weight list (weights.SHAPES's order)."""
  model = MODELS[name]
  arrays = list(arrays)
  params = {}
  for i in range(len(model.convs)):
    kernel, bias, alpha = arrays.pop(0), arrays.pop(0), arrays.pop(0)
    params[f'conv{i + 1}'] = {'kernel': kernel, 'bias': bias}
    params[f'prelu{i + 1}'] = alpha.reshape(-1)
  if model.dense is not None:
    kernel, bias, alpha = arrays.pop(0), arrays.pop(0), arrays.pop(0)
    params['fc'] = {'kernel': kernel, 'bias': bias}
    params['prelu_fc'] = alpha
  for i in range(len(model.heads)):
    params[f'head{i + 1}'] = {'kernel': arrays.pop(0), 'bias': arrays.pop(0)}
  return {'params': jax.tree.map(jnp.asarray, params)}


def load_params() -> dict[str, Params]:
  """The three networks' params, from the installed `mtcnn` package's weight files."""
  return {name: params_from_keras(name, weights_lib.load(name)) for name in MODELS}


@functools.partial(jax.jit, static_argnames='name')
def apply(name: str, params: Params, images: jax.Array) -> tuple[jax.Array, ...]:
  """Runs network `name` on normalised (N, H, W, 3) images: (box offsets, [landmarks,] p(face))."""
  return MODELS[name].apply(params, images)
