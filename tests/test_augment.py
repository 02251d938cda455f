"""Flips and Koch et al.'s affine distortions: what they change and what they keep."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lfw_siamese.model import augment


def _config(flip, affine):
  return ml_collections.ConfigDict({'flip': flip, 'affine': affine})


def _images(count=32, side=16):
  return jax.random.uniform(jax.random.key(0), (count, 2, side, side, 1))


def test_nothing_asked_returns_the_images():
  images = _images()
  assert augment.augment_images(jax.random.key(1), images, _config(False, False)) is images


def test_flip_mirrors_about_half_of_the_images_and_nothing_else():
  images = _images()
  out = augment.augment_images(jax.random.key(1), images, _config(True, False))
  assert out.shape == images.shape and out.dtype == images.dtype
  flat, flat_out = images.reshape(-1, 16, 16, 1), out.reshape(-1, 16, 16, 1)
  same = np.array([np.array_equal(a, b) for a, b in zip(flat, flat_out)])
  mirrored = np.array([np.array_equal(a[:, ::-1], b) for a, b in zip(flat, flat_out)])
  assert np.all(same | mirrored)
  assert 10 < mirrored.sum() < 54


def test_identity_and_whole_pixel_shift_warps_are_exact():
  image = jax.random.uniform(jax.random.key(2), (12, 10, 3))
  np.testing.assert_allclose(augment.warp_affine(image, jnp.eye(2), jnp.zeros(2)), image,
                             atol=1e-6)
  shifted = augment.warp_affine(image, jnp.eye(2), jnp.array([1.0, 0.0]))  # Sample 1 px right.
  np.testing.assert_allclose(shifted[:, :-1], image[:, 1:], atol=1e-6)
  np.testing.assert_allclose(shifted[:, -1], image[:, -1], atol=1e-6)  # Edge pixels repeat.


def test_affine_parameters_stay_in_koch_ranges():
  linears, shifts = jax.vmap(augment.random_affine_matrix)(jax.random.split(jax.random.key(3), 500))
  assert np.all(np.abs(shifts) <= augment.MAX_SHIFT_PIXELS)
  assert 0.3 < np.mean(np.all(shifts == 0, axis=1)) < 0.7  # Shift on with probability 0.5.
  determinants = np.linalg.det(np.asarray(linears))
  # |det| = sx * sy * |1 - shear_x * shear_y|: within the scale and shear ranges.
  assert np.all(determinants > 0.8 ** 2 * (1 - 0.3 ** 2) - 1e-5)
  assert np.all(determinants < 1.2 ** 2 * (1 + 0.3 ** 2) + 1e-5)
  assert np.mean(np.all(np.isclose(linears, np.eye(2)), axis=(1, 2))) > 0.03  # All off: 1/8.


def test_affine_is_deterministic_per_key_jittable_and_keeps_range():
  images = _images(8)
  run = jax.jit(functools.partial(augment.augment_images, augment_config=_config(True, True)))
  first = run(jax.random.key(4), images)
  np.testing.assert_array_equal(first, run(jax.random.key(4), images))
  assert not np.array_equal(first, run(jax.random.key(5), images))
  assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
  assert not np.array_equal(first[:, 0], first[:, 1])
