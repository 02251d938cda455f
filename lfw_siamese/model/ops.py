"""Custom-gradient kernels for speed on CPU: conv2d, matmul, add_bias, bit-packed dropout.

Each computes the same numbers as its plain JAX counterpart. Strided convolutions take their input
gradient as stride-1 convolutions on CPU (see `conv2d`), dropout draws one random bit per unit where
its rate allows, and `compiler_options()` gives the XLA options the jitted steps should use
(benchmarks/README.md has the measurements).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def compiler_options() -> dict[str, Any]:
  """XLA options for jitting this module's functions: `jax.jit(f, compiler_options=...)`.

  On CPU, XLA hands both matmuls and convolutions to YNNPACK by default, whose convolutions run
  at under half the speed of XLA's own (Eigen) ones on this model: matmuls stay on YNNPACK. And
  the CPU backend's default copy insertion copies every donated parameter that a later update
  overwrites (the whole dense kernel: 1 GB at 1,024 units, 3.9 GB at 4,096); region analysis
  proves the copies unneeded. Both options only concern the CPU backend; others ignore them.
  """
  return {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT',
          'xla_cpu_copy_insertion_use_region_analysis': True}


def _dropout_bits(rate: float) -> tuple[int, int]:
  """(random bits per unit, number of kept levels among 2**bits) for a dropout rate.

  The fewest bits that represent the keep probability exactly (1 bit for a rate of 0.5), else 8
  bits with the keep probability rounded to a multiple of 1/256.
  """
  for bits in (1, 2, 4, 8):
    levels = (1.0 - rate) * 2**bits
    if abs(levels - round(levels)) < 1e-9 or bits == 8:
      return bits, int(round(levels))
  raise AssertionError('unreachable')


def dropout_keep_mask(key: jax.Array, shape: Sequence[int], rate: float) -> jax.Array:
  """Boolean keep mask with P(keep) = 1 - rate, from `bits` random bits per unit.

  Draws ceil(units * bits / 32) 32-bit words and unpacks them with shifts, which XLA fuses into
  the consumer: a rate of 0.5 costs one random bit per unit instead of a 32-bit draw.
  """
  bits, levels = _dropout_bits(rate)
  units_per_word = 32 // bits
  size = int(np.prod(shape))
  words = jax.random.bits(key, (-(-size // units_per_word),), jnp.uint32)
  shifts = jnp.arange(0, 32, bits, dtype=jnp.uint32)
  fields = (words[:, None] >> shifts) & jnp.uint32(2**bits - 1)
  return (fields.reshape(-1)[:size] < levels).reshape(shape)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
  """Inverted dropout: zeroes units with probability `rate` and scales the rest up to match."""
  if rate <= 0.0:
    return x
  bits, levels = _dropout_bits(rate)
  keep = dropout_keep_mask(key, x.shape, rate)
  return jnp.where(keep, x * (2**bits / levels), jnp.zeros((), x.dtype))


@jax.custom_vjp
def _relu_dropout(x: jax.Array, keep: jax.Array, scale: float) -> jax.Array:
  """relu(x) * keep * scale, whose gradient needs only its output (no saved mask)."""
  return jnp.where(keep & (x > 0), x * scale, jnp.zeros((), x.dtype))


def _relu_dropout_fwd(x, keep, scale):
  y = _relu_dropout(x, keep, scale)
  return y, (y, scale)


def _relu_dropout_bwd(residuals, grad):
  y, scale = residuals
  # y > 0 exactly where the unit was kept and x > 0 (scale > 0): the output is the mask.
  return jnp.where(y > 0, grad * scale, jnp.zeros((), grad.dtype)), None, None


_relu_dropout.defvjp(_relu_dropout_fwd, _relu_dropout_bwd)


def relu_dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """relu(x) then inverted dropout (none when key is None or rate is 0)."""
  if key is None or rate <= 0.0:
    return nn.relu(x)
  bits, levels = _dropout_bits(rate)
  keep = dropout_keep_mask(key, x.shape, rate)
  return _relu_dropout(x, keep, jnp.asarray(2**bits / levels, x.dtype))


_CONV_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, kernel, strides, padding, preferred_element_type=None):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_CONV_DIMENSIONS,
                                  preferred_element_type=preferred_element_type)


def _input_grad_by_phases(grad: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                          input_shape: Sequence[int]) -> jax.Array:
  """The input gradient of a strided VALID conv as one stride-1 conv per output phase.

  XLA's own transpose convolves the zero-dilated gradient, where all but 1 in stride**2 of the
  products are by zeros. Input pixel (s*a + p, s*b + q) only meets kernel taps (p + s*u, q + s*v),
  so each of the s*s phases (p, q) is a small stride-1 conv over the undilated gradient.
  """
  (sh, sw), (n, h, w, c) = strides, input_shape
  phase_h, phase_w = -(-h // sh), -(-w // sw)
  out_h, out_w = grad.shape[1:3]
  rows = []
  for p in range(sh):
    phases = []
    for q in range(sw):
      taps = kernel[p::sh, q::sw]  # (U, V, C, O): kernel taps (p + s*u, q + s*v).
      u, v = taps.shape[:2]
      if u == 0 or v == 0:
        phases.append(jnp.zeros((n, phase_h, phase_w, c), jnp.float32))
        continue
      flipped = jnp.flip(taps, (0, 1)).swapaxes(2, 3)  # (U, V, O, C)
      padding = ((u - 1, phase_h - out_h), (v - 1, phase_w - out_w))
      phases.append(_conv(grad.astype(kernel.dtype), flipped, (1, 1), padding,
                          preferred_element_type=jnp.float32))
    rows.append(jnp.stack(phases, axis=3))  # (N, phase_h, phase_w, sw, C), float32
  interleaved = jnp.stack(rows, axis=2)  # (N, phase_h, sh, phase_w, sw, C)
  return interleaved.reshape(n, phase_h * sh, phase_w * sw, c)[:, :h, :w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  return _conv(x, kernel, strides, 'VALID', preferred_element_type=jnp.float32)


def _strided_conv_fwd(x, kernel, strides):
  return _strided_conv(x, kernel, strides), (x, kernel)


def _strided_conv_bwd(strides, residuals, grad):
  x, kernel = residuals
  _, kernel_vjp = jax.vjp(
      lambda k: _conv(x, k, strides, 'VALID', preferred_element_type=jnp.float32), kernel)
  input_grad = lax.platform_dependent(
      grad, kernel,
      cpu=lambda g, k: _input_grad_by_phases(g, k, strides, x.shape).astype(x.dtype),
      default=lambda g, k: jax.vjp(
          lambda y: _conv(y, k, strides, 'VALID', preferred_element_type=jnp.float32),
          x)[1](g)[0].astype(x.dtype))
  return input_grad, kernel_vjp(grad)[0]


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: str) -> jax.Array:
  """NHWC x HWIO convolution, float32 accumulation, same numbers as lax.conv_general_dilated.

  Strided convolutions get a custom gradient (`_input_grad_by_phases` on CPU).
  """
  strides = tuple(int(s) for s in strides)
  if strides == (1, 1):
    return _conv(x, kernel, strides, padding, preferred_element_type=jnp.float32)
  if padding != 'VALID':
    pads = lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  return _strided_conv(x, kernel, strides)


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y + bias over the last axis; the bias gradient is a matmul with ones.

  XLA's CPU backend sums a (N, H, W, C) gradient over N, H, W as windowed reductions at a third
  of the speed of the equivalent (1, NHW) x (NHW, C) matmul.
  """
  return y + bias


def _add_bias_fwd(y, bias):
  return y + bias, bias  # The bias (a few numbers) only for its dtype.


def _add_bias_bwd(bias, grad):
  rows = grad.reshape(-1, grad.shape[-1])
  ones = jnp.ones((rows.shape[0],), rows.dtype)
  return grad, jnp.dot(ones, rows, preferred_element_type=jnp.float32).astype(bias.dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


def _matmul_as_dot(x: jax.Array, w: jax.Array) -> jax.Array:
  return jnp.dot(x, w, preferred_element_type=jnp.float32)


def _matmul_as_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  y = lax.conv_general_dilated(x.reshape(1, x.shape[0], 1, x.shape[1]), w.reshape(1, 1, *w.shape),
                               (1, 1), 'VALID', dimension_numbers=_CONV_DIMENSIONS,
                               preferred_element_type=jnp.float32)
  return y.reshape(x.shape[0], w.shape[1])


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """(N, K) x (K, M) with float32 accumulation, the same numbers as jnp.dot.

  On CPU a float32 forward product runs as a 1x1 convolution: XLA hands convolutions to Eigen,
  which took 0.65x the time of the matmul library on the reference's (128, 238144) x (238144, 1024)
  dense layer. In bfloat16 the library is the faster one (0.3x Eigen's time), and the gradients
  are matmuls in both (benchmarks/dense_layer_forms.py).
  """
  cpu = _matmul_as_conv if x.dtype == jnp.float32 else _matmul_as_dot
  return lax.platform_dependent(x, w, cpu=cpu, default=_matmul_as_dot)


def _matmul_fwd(x, w):
  return matmul(x, w), (x, w)


def _matmul_bwd(residuals, grad):
  x, w = residuals
  if w.dtype == jnp.float32:
    x_grad = jnp.dot(grad, w.T, preferred_element_type=jnp.float32)
  else:  # As (w . grad^T)^T: 0.3x the time of grad . w^T in bf16 on CPU; a tie in float32.
    x_grad = lax.dot_general(w, grad.astype(w.dtype), (((1,), (1,)), ((), ())),
                             preferred_element_type=jnp.float32).T
  w_grad = jnp.dot(x.T, grad.astype(x.dtype), preferred_element_type=jnp.float32)
  return x_grad.astype(x.dtype), w_grad.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dense_dot_general(x, kernel, dimension_numbers, precision=None, preferred_element_type=None):
  """nn.Dense's dot_general for a (N, K) input, computed by `matmul`."""
  del precision, preferred_element_type  # Always float32 accumulation.
  if x.ndim != 2 or dimension_numbers != (((1,), (0,)), ((), ())):
    raise ValueError(f'dense layer: expected a (N, K) input, got shape {x.shape}')
  return matmul(x, kernel)
