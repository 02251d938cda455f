"""Random flips and Koch et al.'s affine distortions, in pure JAX on device."""

import jax
import jax.numpy as jnp
import ml_collections

# Koch, Zemel & Salakhutdinov (2015), section 4.1: each component is used with probability 0.5.
MAX_ROTATION_DEGREES = 10.0
MAX_SHEAR = 0.3
SCALE_RANGE = (0.8, 1.2)
MAX_SHIFT_PIXELS = 2.0
COMPONENT_PROBABILITY = 0.5


def random_affine_matrix(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A (2, 2) linear map and (2,) shift in (x, y) pixels, each component on with probability 0.5."""
  keys = jax.random.split(key, 5)
  use = jax.random.bernoulli(keys[0], COMPONENT_PROBABILITY, (4,))
  theta = jnp.deg2rad(jax.random.uniform(
      keys[1], (), minval=-MAX_ROTATION_DEGREES, maxval=MAX_ROTATION_DEGREES)) * use[0]
  shear = jax.random.uniform(keys[2], (2,), minval=-MAX_SHEAR, maxval=MAX_SHEAR) * use[1]
  scale = jnp.where(use[2], jax.random.uniform(keys[3], (2,), minval=SCALE_RANGE[0],
                                               maxval=SCALE_RANGE[1]), 1.0)
  shift = jax.random.uniform(keys[4], (2,), minval=-MAX_SHIFT_PIXELS,
                             maxval=MAX_SHIFT_PIXELS) * use[3]
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  rotation = jnp.array([[cos, -sin], [sin, cos]])
  shearing = jnp.array([[1.0, shear[0]], [shear[1], 1.0]])
  return rotation @ shearing @ jnp.diag(scale), shift


def warp_affine(image: jax.Array, linear: jax.Array, shift: jax.Array) -> jax.Array:
  """Bilinearly samples (H, W, C) `image` at linear @ (p - centre) + centre + shift, each pixel p.

  Samples outside the image take the nearest edge pixel.
  """
  height, width = image.shape[:2]
  ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing='ij')
  centre = jnp.array([(width - 1) / 2.0, (height - 1) / 2.0])
  points = jnp.stack([xs.ravel(), ys.ravel()]) - centre[:, None]
  source_x, source_y = linear @ points + (centre + shift)[:, None]
  x0, y0 = jnp.floor(source_x), jnp.floor(source_y)
  wx, wy = (source_x - x0)[:, None], (source_y - y0)[:, None]

  def pixel(y, x):
    y = jnp.clip(y, 0, height - 1).astype(jnp.int32)
    x = jnp.clip(x, 0, width - 1).astype(jnp.int32)
    return image[y, x]

  top = pixel(y0, x0) * (1 - wx) + pixel(y0, x0 + 1) * wx
  bottom = pixel(y0 + 1, x0) * (1 - wx) + pixel(y0 + 1, x0 + 1) * wx
  return (top * (1 - wy) + bottom * wy).reshape(image.shape).astype(image.dtype)


def augment_images(key: jax.Array, images: jax.Array,
                   augment_config: ml_collections.ConfigDict) -> jax.Array:
  """Augments a batch of images of any leading shape (..., H, W, C), each independently."""
  if not (augment_config.flip or augment_config.affine):
    return images
  flip_key, affine_key = jax.random.split(key)
  leading = images.shape[:-3]
  # Random draws shaped like the batch: keys split over a reshaped batch drew differently when
  # the batch was sharded over several processes (tests/test_multihost.py).
  if augment_config.flip:
    mirrored = jax.random.bernoulli(flip_key, 0.5, leading)
    images = jnp.where(mirrored[..., None, None, None], images[..., ::-1, :], images)
  if augment_config.affine:
    distort = lambda k, image: warp_affine(image, *random_affine_matrix(k))
    for _ in leading:
      distort = jax.vmap(distort)
    images = distort(jax.random.split(affine_key, leading), images)
  return images
