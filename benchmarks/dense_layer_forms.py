"""Times the reference dense layer's three products in each form ops.matmul chooses between.

  python benchmarks/dense_layer_forms.py [--rounds 3]

(128, 238144) x (238144, 1024), as in seed.py's step (64 pairs = 128 images), float32 and
bfloat16 operands with float32 accumulation, each jitted alone with ops.compiler_options();
prints the median of --rounds calls per form.
"""

import argparse
import statistics
import time

import jax
from jax import lax
import jax.numpy as jnp

from lfw_siamese.model import ops

ROWS, DEPTH, UNITS = 128, 238144, 1024


def forms(dtype):
  """name -> (function, arguments) for one operand dtype."""
  f32 = jnp.float32
  x = jax.random.normal(jax.random.key(0), (ROWS, DEPTH)).astype(dtype)
  w = (jax.random.normal(jax.random.key(1), (DEPTH, UNITS)) * 0.01).astype(dtype)
  g = jax.random.normal(jax.random.key(2), (ROWS, UNITS))
  return {
      'forward as 1x1 conv': (ops._matmul_as_conv, (x, w)),  # pylint: disable=protected-access
      'forward as matmul': (ops._matmul_as_dot, (x, w)),  # pylint: disable=protected-access
      'input grad g.w^T': (lambda g, w: jnp.dot(g.astype(w.dtype), w.T,
                                                preferred_element_type=f32), (g, w)),
      'input grad (w.g^T)^T': (lambda g, w: lax.dot_general(
          w, g.astype(w.dtype), (((1,), (1,)), ((), ())), preferred_element_type=f32).T, (g, w)),
      'kernel grad x^T.g': (lambda x, g: jnp.dot(x.T, g.astype(x.dtype),
                                                 preferred_element_type=f32), (x, g)),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()
  for dtype in (jnp.float32, jnp.bfloat16):
    for name, (function, arguments) in forms(dtype).items():
      jitted = jax.jit(function, compiler_options=ops.compiler_options())
      jax.block_until_ready(jitted(*arguments))
      times = []
      for _ in range(args.rounds):
        started = time.perf_counter()
        jax.block_until_ready(jitted(*arguments))
        times.append(time.perf_counter() - started)
      print(f'{jnp.dtype(dtype).name:<9} {name:<22} {statistics.median(times) * 1000:8.0f} ms')


if __name__ == '__main__':
  main()
