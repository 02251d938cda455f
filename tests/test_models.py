"""model/: the fast kernels and layers give the plain ones' numbers, forward and backward."""

import functools

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from lfw_siamese.configs import default as default_config
from lfw_siamese.configs import koch2015 as koch2015_config
from lfw_siamese.configs import seed as seed_config
from lfw_siamese.configs import tiny as tiny_config
from lfw_siamese.model import networks
from lfw_siamese.model import ops

jax.config.update('jax_enable_x64', False)
DN = ('NHWC', 'HWIO', 'NHWC')


def _lax_conv(x, kernel, strides, padding):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=DN,
                                  precision='highest')


def _close(actual, expected, rtol=2e-5):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  scale = max(np.max(np.abs(expected)), 1e-12)
  np.testing.assert_allclose(actual / scale, expected / scale, atol=rtol, rtol=0)


@pytest.mark.parametrize('size, kernel, stride, padding, channels', [
    ((19, 19), 3, 2, 'VALID', (4, 5)),
    ((20, 17), 3, 2, 'SAME', (3, 6)),
    ((15, 15), 4, 2, 'VALID', (2, 3)),
    ((16, 16), 1, 2, 'VALID', (2, 3)),   # Kernel smaller than the stride: empty phases.
    ((17, 13), 5, 3, 'VALID', (2, 4)),
    ((12, 12), 3, 1, 'SAME', (3, 2)),
    ((12, 12), 3, 1, 'VALID', (1, 4)),
])
def test_conv2d_matches_lax_forward_and_gradients(size, kernel, stride, padding, channels):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (2, *size, channels[0]))
  w = jax.random.normal(keys[1], (kernel, kernel, *channels))
  strides = (stride, stride)
  fast = ops.conv2d(x, w, strides, padding)
  reference = _lax_conv(x, w, strides, padding)
  assert fast.shape == reference.shape
  _close(fast, reference)
  probe = jax.random.normal(keys[2], reference.shape)  # A random cotangent.
  fast_grads = jax.jit(jax.grad(
      lambda x, w: jnp.sum(probe * ops.conv2d(x, w, strides, padding)), argnums=(0, 1)))(x, w)
  reference_grads = jax.grad(lambda x, w: jnp.sum(probe * _lax_conv(x, w, strides, padding)),
                             argnums=(0, 1))(x, w)
  for got, want in zip(fast_grads, reference_grads):
    _close(got, want)


def test_add_bias_gradient_is_the_sum_over_all_but_channels():
  y = jax.random.normal(jax.random.key(0), (3, 5, 4, 6))
  bias = jnp.arange(6.0)
  probe = jax.random.normal(jax.random.key(1), y.shape)
  grads = jax.grad(lambda y, b: jnp.sum(probe * ops.add_bias(y, b)), argnums=(0, 1))(y, bias)
  _close(ops.add_bias(y, bias), y + bias)
  _close(grads[0], probe)
  _close(grads[1], probe.sum((0, 1, 2)))


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_matmul_matches_dot_forward_and_gradients(dtype):
  x = jax.random.normal(jax.random.key(0), (6, 300)).astype(dtype)
  w = jax.random.normal(jax.random.key(1), (300, 5)).astype(dtype)
  probe = jax.random.normal(jax.random.key(2), (6, 5))
  plain = lambda x, w: jnp.dot(x, w, preferred_element_type=jnp.float32)
  assert ops.matmul(x, w).dtype == jnp.float32
  tolerance = 1e-4 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(ops.matmul(x, w), plain(x, w), rtol=tolerance, atol=tolerance)
  grads = jax.grad(lambda x, w: jnp.sum(probe * ops.matmul(x, w)), argnums=(0, 1))(x, w)
  expected = jax.grad(lambda x, w: jnp.sum(probe * plain(x, w)), argnums=(0, 1))(x, w)
  for got, want in zip(grads, expected):
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(jnp.float32), want.astype(jnp.float32),
                               rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize('rate, bits', [(0.5, 1), (0.25, 2), (0.75, 2), (0.2, 8), (0.3, 8)])
def test_dropout_keeps_the_right_fraction_with_few_random_bits(rate, bits):
  assert ops._dropout_bits(rate)[0] == bits
  keep = ops.dropout_keep_mask(jax.random.key(0), (64, 33, 7), rate)
  assert keep.shape == (64, 33, 7) and keep.dtype == jnp.bool_
  kept = float(jnp.mean(keep))
  assert abs(kept - (1 - rate)) < 0.01, kept
  # Same key, same mask; another key, another mask.
  assert bool(jnp.all(keep == ops.dropout_keep_mask(jax.random.key(0), (64, 33, 7), rate)))
  assert not bool(jnp.all(keep == ops.dropout_keep_mask(jax.random.key(1), (64, 33, 7), rate)))


def test_dropout_scales_kept_units_and_zeroes_the_others():
  x = jax.random.uniform(jax.random.key(0), (8, 16, 32), minval=1.0, maxval=2.0)
  y = ops.dropout(x, 0.5, jax.random.key(3))
  kept = y != 0
  _close(jnp.where(kept, y, 0), jnp.where(kept, 2 * x, 0))
  assert 0.4 < float(jnp.mean(kept)) < 0.6
  assert ops.dropout(x, 0.0, jax.random.key(3)) is x


def test_relu_dropout_gradient_matches_autodiff_of_the_plain_formula():
  x = jax.random.normal(jax.random.key(0), (4, 6, 6, 32))
  key = jax.random.key(5)
  keep = ops.dropout_keep_mask(key, x.shape, 0.5)
  probe = jax.random.normal(jax.random.key(1), x.shape)
  fast = jax.grad(lambda x: jnp.sum(probe * ops.relu_dropout(x, 0.5, key)))(x)
  plain = jax.grad(lambda x: jnp.sum(probe * jnp.where(keep, nn.relu(x) * 2.0, 0.0)))(x)
  _close(ops.relu_dropout(x, 0.5, key), jnp.where(keep, nn.relu(x) * 2.0, 0.0))
  _close(fast, plain)


class _StraightforwardEncoder(nn.Module):
  """The encoder as first written: nn.Conv, relu, dropout after each block, nn.Dense."""

  encoder: networks.Encoder

  @nn.compact
  def __call__(self, images):
    e = self.encoder
    (conv_kernel_init, conv_bias_init), (dense_kernel_init, dense_bias_init) = (
        networks._initializers(e.init))
    x = images
    for i, (filters, kernel, stride, pool) in enumerate(
        zip(e.conv_filters, e.conv_kernels, e.conv_strides, e.max_pool)):
      x = nn.relu(nn.Conv(filters, (kernel, kernel), strides=stride, padding=e.padding,
                          kernel_init=conv_kernel_init, bias_init=conv_bias_init,
                          precision='highest', name=f'conv{i}')(x))
      if pool:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dense(e.dense_units, kernel_init=dense_kernel_init, bias_init=dense_bias_init,
                 precision='highest', name='dense')(x.reshape((x.shape[0], -1)))
    return networks._ACTIVATIONS[e.dense_activation](x)


class _StraightforwardNet(nn.Module):
  """Twin towers by nn.vmap over the pair axis, then the project's head."""

  net: networks.SiameseNet

  @nn.compact
  def __call__(self, pairs, embeddings_only=False):
    twin = nn.vmap(lambda encoder, x: encoder(x), in_axes=1, out_axes=1,
                   variable_axes={'params': None}, split_rngs={'params': False})
    embeddings = twin(_StraightforwardEncoder(self.net.encoder, name='encoder'), pairs)
    logits = networks.PairHead(self.net.head.kind, name='head')(embeddings[:, 0], embeddings[:, 1])
    return embeddings if embeddings_only else logits


@pytest.mark.slow
@pytest.mark.parametrize('config_module, side', [
    (seed_config, 27), (default_config, 24), (koch2015_config, 70)])
def test_model_matches_the_straightforward_version(config_module, side):
  config = config_module.get_config()
  config.model.dense_units = 64  # The dense width changes nothing that is compared here.
  model = networks.build(config.model)
  reference = _StraightforwardNet(model)
  shape = (side, side, 1)
  params = networks.init(model, jax.random.key(0), shape)
  reference_params = reference.init(jax.random.key(0), jnp.zeros((1, 2, *shape)))['params']
  # Same parameter names, shapes and initial values: checkpoints stay compatible.
  assert jax.tree.structure(params) == jax.tree.structure(reference_params)
  for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
    np.testing.assert_array_equal(got, want)
  pairs = jax.random.uniform(jax.random.key(1), (3, 2, *shape))
  with jax.default_matmul_precision('highest'):
    logits = jax.jit(functools.partial(networks.pair_logits, model))(params, pairs)
  _close(logits, jax.jit(reference.apply)({'params': params}, pairs), rtol=1e-5)
  # Gradients through the embeddings (the weighted-L1 head's |a - b| has a kink where a = b,
  # which rounding alone can cross): a random cotangent on both sides' embeddings.
  probe = jax.random.normal(jax.random.key(2), (3, 2, config.model.dense_units))
  reference_embed = functools.partial(reference.apply, embeddings_only=True)
  with jax.default_matmul_precision('highest'):
    grads = jax.jit(jax.grad(
        lambda p: jnp.sum(probe * networks.embed_pairs(model, p, pairs))))(params)
  reference_grads = jax.jit(jax.grad(
      lambda p: jnp.sum(probe * reference_embed({'params': p}, pairs))))(params)
  for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(grads['encoder']),
                               jax.tree.leaves(reference_grads['encoder'])):
    try:
      _close(got, want, rtol=1e-4)
    except AssertionError as error:
      raise AssertionError(f'gradient of {jax.tree_util.keystr(path)}') from error


def test_training_mode_uses_dropout_and_is_deterministic_per_key():
  config = seed_config.get_config()
  model = networks.build(config.model)
  params = networks.init(model, jax.random.key(0), (27, 27, 1))
  pairs = jax.random.uniform(jax.random.key(1), (4, 2, 27, 27, 1))
  first = networks.pair_logits(model, params, pairs, train=True, dropout_key=jax.random.key(2))
  again = networks.pair_logits(model, params, pairs, train=True, dropout_key=jax.random.key(2))
  other = networks.pair_logits(model, params, pairs, train=True, dropout_key=jax.random.key(3))
  evaluation = networks.pair_logits(model, params, pairs)
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, other)
  assert not np.allclose(first, evaluation)


def test_embed_pairs_runs_each_side_through_the_same_encoder():
  config = tiny_config.get_config()
  model = networks.build(config.model)
  params = networks.init(model, jax.random.key(0), (32, 32, 1))
  pairs = jax.random.uniform(jax.random.key(1), (5, 2, 32, 32, 1))
  embeddings = networks.embed_pairs(model, params, pairs)
  assert embeddings.shape == (5, 2, config.model.dense_units)
  for side in range(2):
    _close(embeddings[:, side], networks.encode(model, params, pairs[:, side]), rtol=1e-5)


def test_bfloat16_compute_stays_close_to_float32():
  config = seed_config.get_config()
  model32 = networks.build(config.model)
  config.model.compute_dtype = 'bfloat16'
  model16 = networks.build(config.model)
  params = networks.init(model32, jax.random.key(0), (27, 27, 1))
  pairs = jax.random.uniform(jax.random.key(1), (16, 2, 27, 27, 1))
  logits32 = np.asarray(networks.pair_logits(model32, params, pairs))
  logits16 = networks.pair_logits(model16, params, pairs)
  assert logits16.dtype == jnp.float32
  # Fresh weights give logits that differ little between pairs (a spread of about 0.02): bf16's
  # error is measured against that spread, where a wrong order of pairs would show.
  spread = np.ptp(logits32)
  assert spread > 1e-3
  assert np.max(np.abs(np.asarray(logits16) - logits32)) <= 0.05 * spread
  grads = jax.jit(jax.grad(lambda p: jnp.sum(networks.pair_logits(
      model16, p, pairs, train=True, dropout_key=jax.random.key(2)))))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_compiler_options_are_accepted_by_jit():
  f = jax.jit(lambda x, w: ops.conv2d(x, w, (2, 2), 'VALID'),
              compiler_options=ops.compiler_options())
  x, w = jnp.ones((1, 9, 9, 2)), jnp.ones((3, 3, 2, 3))
  _close(f(x, w), _lax_conv(x, w, (2, 2), 'VALID'))
