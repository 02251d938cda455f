"""The one scoring path: embed each distinct image once, then score pairs of the embeddings.

Training's validation and test scoring, `evaluate`, `verify`, `embed` and `inference.Verifier` all
score through here. An image is embedded by the network (with its mirror image too under
config.tta_flip) and, given a fusion stage (classic/fusion.py), described by its LBP descriptors;
a pair's probability is the network's (the mean over the plain/mirrored combinations of its two
sides), fused with the descriptors' cosines when there is a stage.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from lfw_siamese import sharding
from lfw_siamese.model import networks
from lfw_siamese.model import ops


class Embedded(NamedTuple):
  """What scoring needs of N images: network embeddings (V, N, D), V = 2 under tta_flip (the
  images, then their mirror images), else 1; and LBP descriptors (N, K) under a fusion stage."""
  network: np.ndarray
  lbp: np.ndarray | None = None

  def __len__(self) -> int:
    return self.network.shape[1]

  def take(self, rows: np.ndarray) -> 'Embedded':
    """The embeddings of the images at `rows`."""
    return Embedded(self.network[:, rows], None if self.lbp is None else self.lbp[rows])


def distinct_images(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The distinct images (U, H, W, C) of (N, 2, H, W, C) pairs, and (N, 2) rows into them."""
  if not len(pairs):
    return pairs.reshape(-1, *pairs.shape[2:]), np.zeros((0, 2), np.int64)
  flat = np.ascontiguousarray(pairs).reshape(2 * len(pairs), int(np.prod(pairs.shape[2:])))
  # Each image's bytes as one opaque value, so that np.unique compares whole images.
  _, first, inverse = np.unique(flat.view(np.dtype((np.void, flat.shape[1]))).ravel(),
                                return_index=True, return_inverse=True)
  return pairs.reshape(-1, *pairs.shape[2:])[first], inverse.reshape(-1, 2)


@functools.lru_cache(maxsize=16)
def _embedding_fn(model: networks.SiameseNet, tta_flip: bool, mesh: jax.sharding.Mesh):
  """A jitted (params, images (N, ...)) -> embeddings (V, N, D)."""

  def embed(params, images):
    images = networks.unit_range(images)
    views = [images, images[..., ::-1, :]] if tta_flip else [images]
    embeddings = networks.encode(model, params, jnp.concatenate(views))
    return embeddings.reshape(len(views), images.shape[0], -1)

  return jax.jit(embed, out_shardings=sharding.replicated(mesh),
                 compiler_options=ops.compiler_options())


@functools.lru_cache(maxsize=16)
def _probability_fn(model: networks.SiameseNet, mesh: jax.sharding.Mesh):
  """A jitted (params, a (V, N, D), b (V, N, D)) -> probabilities (N,), the mean over the V x V
  combinations of the two sides' views."""

  def probabilities(params, a, b):
    logits = networks.score_embeddings(model, params, a[:, None], b[None, :])
    return jnp.mean(jax.nn.sigmoid(logits), axis=(0, 1))

  return jax.jit(probabilities, out_shardings=sharding.replicated(mesh))


def embed_network(model: networks.SiameseNet, params: Any, images: np.ndarray, *,
                  tta_flip: bool, batch_size: int = 128) -> np.ndarray:
  """Network embeddings (V, N, D) of images (N, H, W, C), uint8 or float in [0, 1], on every
  device (and host) of the mesh, in batches of one shape."""
  mesh = sharding.make_mesh()
  params = sharding.replicate(params, mesh)
  embed = _embedding_fn(model, bool(tta_flip), mesh)
  batch_size = -(-batch_size // mesh.size) * mesh.size
  local_size = batch_size // jax.process_count()
  local_start = jax.process_index() * local_size
  chunks = []
  begins = range(0, len(images), batch_size)
  for begin in tqdm.tqdm(begins, desc='embedding images', unit='batch', leave=False,
                         disable=True if len(begins) < 8 or jax.process_index() else None):
    chunk = images[begin:begin + batch_size]
    count = len(chunk)
    if count < batch_size:  # Pad so that every batch has one shape (one compilation).
      chunk = np.concatenate([chunk, np.zeros((batch_size - count, *chunk.shape[1:]), chunk.dtype)])
    batch = sharding.global_batch({'images': chunk[local_start:local_start + local_size]}, mesh)
    chunks.append(np.asarray(embed(params, batch['images']).addressable_data(0))[:, :count])
  if not chunks:
    return np.zeros((2 if tta_flip else 1, 0, model.encoder.dense_units), np.float32)
  return np.concatenate(chunks, axis=1)


def embed(model: networks.SiameseNet, params: Any, images: np.ndarray, *, tta_flip: bool,
          fusion=None, batch_size: int = 128) -> Embedded:
  """What `score` takes of images (N, H, W, C): their embeddings and, with a fusion stage, their
  LBP descriptors."""
  network = embed_network(model, params, images, tta_flip=tta_flip, batch_size=batch_size)
  return Embedded(network, None if fusion is None else fusion.embed(images))


def network_probabilities(model: networks.SiameseNet, params: Any, a: Embedded,
                          b: Embedded) -> np.ndarray:
  """The network's same-person probabilities (N,) of aligned embeddings a[i], b[i]."""
  if not len(a):
    return np.zeros((0,), np.float32)
  mesh = sharding.make_mesh()
  probabilities = _probability_fn(model, mesh)(
      sharding.replicate(params, mesh), sharding.replicate(a.network, mesh),
      sharding.replicate(b.network, mesh))
  return np.asarray(probabilities.addressable_data(0))


def score(model: networks.SiameseNet, params: Any, a: Embedded, b: Embedded,
          fusion=None) -> np.ndarray:
  """Same-person probabilities (N,) of aligned embeddings a[i], b[i]: the network's, fused with
  the LBP descriptors' cosines under a fusion stage."""
  probabilities = network_probabilities(model, params, a, b)
  if fusion is None or not len(a):
    return probabilities
  return fusion.score(probabilities, a.lbp, b.lbp)


def score_rows(model, params, embedded: Embedded, rows: np.ndarray, fusion=None) -> np.ndarray:
  """Probabilities (N,) of the pairs (N, 2) of rows into one set of embeddings."""
  rows = np.asarray(rows, np.int64).reshape(-1, 2)
  return score(model, params, embedded.take(rows[:, 0]), embedded.take(rows[:, 1]), fusion)


def score_pairs(model: networks.SiameseNet, params: Any, pairs: np.ndarray, *, tta_flip: bool,
                fusion=None, batch_size: int = 128) -> np.ndarray:
  """Same-person probabilities (N,) of image pairs (N, 2, H, W, C), each distinct image embedded
  once (View 1's 687 validation pairs hold 430 distinct images in their 1,374 places)."""
  images, rows = distinct_images(np.asarray(pairs))
  embedded = embed(model, params, images, tta_flip=tta_flip, fusion=fusion,
                   batch_size=batch_size)
  return score_rows(model, params, embedded, rows, fusion)
