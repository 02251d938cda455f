"""A trained workdir as an object that encodes images and scores pairs, on models.py's functions.

  verifier = inference.load('runs/default')
  verifier.verify('a.jpg', 'b.jpg')   # {'probability': 0.93, 'threshold': 0.41, 'same': True, ...}
  embeddings = verifier.encode(images)  # images: uint8 (N, H, W, C) as input_pipeline makes them
  probabilities = verifier.score(images_a, images_b)

A workdir with a fusion stage (fusion.py, lbp_fusion.npz) scores pairs with it: the CNN's
probability fused with the LBP descriptors' cosines.
"""

import functools
import json
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lfw_siamese import checkpointing
from lfw_siamese import fusion as fusion_lib
from lfw_siamese import image_io
from lfw_siamese import input_pipeline
from lfw_siamese import models


class Verifier:
  """A trained siamese model with its preprocessing and decision threshold."""

  def __init__(self, config: ml_collections.ConfigDict, params: Any,
               threshold: float | None = None, *, batch_size: int = 64,
               max_pixels: int = image_io.DEFAULT_MAX_PIXELS,
               fusion: fusion_lib.LbpFusion | None = None):
    self.config = config
    self.fusion = fusion
    self.params = params
    self.threshold = threshold
    self.batch_size = batch_size
    self.max_pixels = max_pixels
    self.model = models.build(config.model)
    self.image_shape = tuple(input_pipeline.image_shape(config.data))
    self.tta_flip = bool(config.get('tta_flip', False))
    self._encode = jax.jit(functools.partial(models.encode, self.model))
    self._score = jax.jit(
        lambda params, a, b: jax.nn.sigmoid(models.score_embeddings(self.model, params, a, b)))

  def preprocess(self, image: np.ndarray) -> np.ndarray:
    """Any uint8 HxW[xC] image -> uint8 (H, W, C) exactly as training preprocesses it."""
    return input_pipeline.preprocess(np.asarray(image), self.config.data)

  def load_image(self, path: str) -> np.ndarray:
    """Reads and preprocesses one image file; raises image_io.ImageFileError naming it."""
    return self.preprocess(image_io.read_rgb(path, self.max_pixels))

  def _as_batch(self, images) -> np.ndarray:
    """float32 (N, H, W, C) in [0, 1] from model-shaped arrays, or from raw images one by one."""
    if isinstance(images, np.ndarray) and images.shape[1:] == self.image_shape:
      batch = images
    else:
      batch = np.stack([self.preprocess(image) for image in images]) if len(images) else (
          np.zeros((0, *self.image_shape), np.uint8))
    if batch.dtype == np.uint8:
      return batch.astype(np.float32) / 255.0
    return batch.astype(np.float32)

  def encode(self, images, *, flip: bool = False) -> np.ndarray:
    """Embeds images into float32 (N, D).

    Args:
      images: uint8 (N, H, W, C) preprocessed as in training (or float32 in [0, 1]), or a sequence
        of raw uint8 images of any size, which are preprocessed first.
      flip: embed the mirror images instead (test-time flip averaging).
    """
    batch = self._as_batch(images)
    if flip:
      batch = batch[:, :, ::-1]
    outputs = []
    for start in range(0, batch.shape[0], self.batch_size):
      chunk = batch[start:start + self.batch_size]
      padded = np.zeros((self.batch_size, *batch.shape[1:]), np.float32)  # One compiled shape.
      padded[:chunk.shape[0]] = chunk
      outputs.append(np.asarray(self._encode(self.params, jnp.asarray(padded)))[:chunk.shape[0]])
    if not outputs:
      return np.zeros((0, self.embedding_size), np.float32)
    return np.concatenate(outputs)

  @functools.cached_property
  def embedding_size(self) -> int:
    return int(self.model.encoder.dense_units)

  def score_embeddings(self, embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> np.ndarray:
    """Same-person probabilities (N,) for two (N, D) batches of embeddings."""
    if embeddings_a.shape[0] == 0:
      return np.zeros((0,), np.float32)
    return np.asarray(self._score(self.params, jnp.asarray(embeddings_a),
                                  jnp.asarray(embeddings_b)))

  def embed_for_scoring(self, images):
    """What `score_embedded` takes: the embeddings, with their mirror images' under
    config.tta_flip, and the LBP descriptors under a fusion stage."""
    batch = self._as_batch(images)  # Raw images are preprocessed once for every embedding.
    cnn = (self.encode(batch), self.encode(batch, flip=True)) if self.tta_flip else (
        self.encode(batch))
    if self.fusion is None:
      return cnn
    return {'cnn': cnn, 'lbp': self.fusion.embed(batch)}

  @staticmethod
  def take(embedded, rows: np.ndarray):
    """The given rows of `embed_for_scoring`'s output."""
    return jax.tree.map(lambda array: array[rows], embedded)

  def score_embedded(self, embedded_a, embedded_b) -> np.ndarray:
    """Probabilities from `embed_for_scoring` outputs.

    With config.tta_flip, the CNN's is the mean probability over the four plain/mirrored
    combinations of the two sides, as train.predict_probabilities computes it (so the workdir's
    threshold applies); a fusion stage then fuses it with the LBP descriptors' cosines.
    """
    if self.fusion is not None:
      cnn = self.score_embedded_cnn(embedded_a['cnn'], embedded_b['cnn'])
      return self.fusion.score(cnn, embedded_a['lbp'], embedded_b['lbp'])
    return self.score_embedded_cnn(embedded_a, embedded_b)

  def score_embedded_cnn(self, embedded_a, embedded_b) -> np.ndarray:
    """The network's probabilities alone, from `embed_for_scoring`'s network part."""
    if self.tta_flip:
      return np.mean([self.score_embeddings(a, b) for a in embedded_a for b in embedded_b], axis=0)
    return self.score_embeddings(embedded_a, embedded_b)

  def score(self, images_a, images_b) -> np.ndarray:
    """Same-person probabilities (N,) for two aligned batches of images (see `encode`)."""
    return self.score_embedded(self.embed_for_scoring(images_a), self.embed_for_scoring(images_b))

  def score_pairs(self, pairs) -> np.ndarray:
    """Probabilities (N,) for an input_pipeline.PairSet or uint8 (N, 2, H, W, C) pairs."""
    images = pairs.images if hasattr(pairs, 'images') else np.asarray(pairs)
    return self.score(images[:, 0], images[:, 1])

  def decide(self, probabilities) -> np.ndarray:
    """True where a probability reaches the threshold (same person)."""
    if self.threshold is None:
      raise ValueError('this Verifier has no threshold: pass one to load() or Verifier()')
    return np.asarray(probabilities) >= self.threshold

  def verify(self, path_a: str, path_b: str) -> dict:
    """Scores two image files: {'image_a', 'image_b', 'probability', 'threshold', 'same'}."""
    images = np.stack([self.load_image(path_a), self.load_image(path_b)])
    probability = float(self.score(images[:1], images[1:])[0])
    return {'image_a': path_a, 'image_b': path_b, 'probability': probability,
            'threshold': self.threshold, 'same': bool(self.decide(probability))}

  def verify_many(self, path_pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Probabilities for many file pairs, each distinct file read and embedded once."""
    paths = sorted({p for pair in path_pairs for p in pair})
    index = {p: i for i, p in enumerate(paths)}
    images = np.stack([self.load_image(p) for p in paths]) if paths else np.zeros(
        (0, *self.image_shape), np.uint8)
    embedded = self.embed_for_scoring(images)
    rows_a = np.array([index[a] for a, _ in path_pairs], dtype=np.int64)
    rows_b = np.array([index[b] for _, b in path_pairs], dtype=np.int64)
    return self.score_embedded(self.take(embedded, rows_a), self.take(embedded, rows_b))


def read_threshold(workdir: str, fields: Sequence[str] = ('threshold',)) -> float:
  """The decision threshold chosen on validation pairs: the first of `fields` in summary.json."""
  path = os.path.join(workdir, 'summary.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such file (training writes it when it ends; '
                            'pass a threshold explicitly meanwhile)')
  with open(path) as f:
    try:
      summary = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: not valid JSON ({e})') from None
  field = next((name for name in fields if name in summary), fields[-1])
  if not isinstance(summary.get(field), (int, float)):
    raise ValueError(f'{path}: expected a numeric "{field}" field, got {summary.get(field)!r}')
  return float(summary[field])


def load(workdir: str, *, threshold: float | None = None, batch_size: int = 64,
         max_pixels: int = image_io.DEFAULT_MAX_PIXELS, with_fusion: bool = True) -> Verifier:
  """Loads a workdir's best checkpoint; the threshold defaults to the one in summary.json.

  Without summary.json (a run still training) and without `threshold`, the Verifier encodes and
  scores but has no threshold to decide with. `with_fusion=False` ignores a fusion stage and
  decides with the network's own threshold.
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'{workdir}: no such workdir')
  config, params = checkpointing.load_best(workdir)
  fusion = fusion_lib.load(workdir) if with_fusion else None
  if threshold is None and os.path.exists(os.path.join(workdir, 'summary.json')):
    # Without the stage, the network's own threshold, kept beside the fused one when it was added.
    threshold = read_threshold(workdir, ('threshold',) if with_fusion else (
        'cnn_only_threshold', 'threshold'))
  return Verifier(config, params, threshold, batch_size=batch_size, max_pixels=max_pixels,
                  fusion=fusion)
