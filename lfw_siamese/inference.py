"""A trained workdir as an object that encodes images and scores pairs, through scoring.py.

  verifier = inference.load('runs/default')
  verifier.verify('a.jpg', 'b.jpg')   # {'probability': 0.93, 'threshold': 0.41, 'same': True, ...}
  embeddings = verifier.encode(images)  # images: uint8 (N, H, W, C) as data.loading makes them
  probabilities = verifier.score(images_a, images_b)

A workdir with a fusion stage (classic/fusion.py, lbp_fusion.npz) scores pairs with it: the CNN's
probability fused with the LBP descriptors' cosines.

Image files (`verify`, `load_image`, `read_face`) are framed first: the faces are detected, and the
largest (or `Framing.face_index`-th) is aligned to LFW's framing (detection/align.py), unless
`Framing(detect=False)` says they are LFW-framed crops already. Arrays given to `encode` and
`score` are taken as framed.
"""

import os
from typing import Any, Sequence

import ml_collections
import numpy as np

from lfw_siamese import checkpointing
from lfw_siamese import scoring
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.classic import fusion as fusion_lib
from lfw_siamese.data import image_io
from lfw_siamese.data import images as images_lib
from lfw_siamese.detection import align
from lfw_siamese.detection import detector as detector_lib
from lfw_siamese.model import networks

Framing = align.Framing


class Verifier:
  """A trained siamese model with its preprocessing and decision threshold."""

  def __init__(self, config: ml_collections.ConfigDict, params: Any,
               threshold: float | None = None, *, batch_size: int = 64,
               max_pixels: int = image_io.DEFAULT_MAX_PIXELS,
               fusion: fusion_lib.LbpFusion | None = None, framing: Framing = Framing()):
    self.config = config
    self.framing = framing
    self._detector = None
    self.fusion = fusion
    self.params = params
    self.threshold = threshold
    self.batch_size = batch_size
    self.max_pixels = max_pixels
    self.model = networks.build(config.model)
    self.image_shape = tuple(images_lib.image_shape(config.data))
    self.tta_flip = bool(config.get('tta_flip', False))

  def preprocess(self, image: np.ndarray) -> np.ndarray:
    """Any uint8 HxW[xC] image -> uint8 (H, W, C) exactly as training preprocesses it."""
    return images_lib.preprocess(np.asarray(image), self.config.data)

  @property
  def detector(self) -> detector_lib.Detector:
    """The face detector, loaded on first use."""
    if self._detector is None:
      self._detector = detector_lib.load()
    return self._detector

  def frame(self, image: np.ndarray, name: str = 'image') -> align.AlignedFace:
    """A uint8 (H, W, 3) photo framed as `self.framing` says; raises align.NoFaceError."""
    if not self.framing.detect:
      return align.AlignedFace(np.asarray(image), 'as given', [])
    return align.align(image, self.detector, face_index=self.framing.face_index,
                       no_face=self.framing.no_face, name=name)

  def read_face(self, path: str) -> align.AlignedFace:
    """Reads an image file and frames it; errors (image_io.ImageFileError, align.NoFaceError)
    name the file."""
    return self.frame(image_io.read_rgb(path, self.max_pixels), name=path)

  def load_image(self, path: str) -> np.ndarray:
    """Reads, frames and preprocesses one image file, as the network sees it."""
    return self.preprocess(self.read_face(path).crop)

  def _as_batch(self, images) -> np.ndarray:
    """Model-shaped (N, H, W, C) images (uint8, or float in [0, 1]), from such arrays or from raw
    images of any size, which are preprocessed one by one."""
    if isinstance(images, np.ndarray) and images.shape[1:] == self.image_shape:
      return images
    if not len(images):
      return np.zeros((0, *self.image_shape), np.uint8)
    return np.stack([self.preprocess(image) for image in images])

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
    return scoring.embed_network(self.model, self.params, batch, tta_flip=False,
                                 batch_size=self.batch_size)[0]

  @property
  def embedding_size(self) -> int:
    return int(self.model.encoder.dense_units)

  def embed_for_scoring(self, images) -> scoring.Embedded:
    """What `score_embedded` takes: the embeddings (with their mirror images' under
    config.tta_flip) and, under a fusion stage, the LBP descriptors."""
    return scoring.embed(self.model, self.params, self._as_batch(images), tta_flip=self.tta_flip,
                         fusion=self.fusion, batch_size=self.batch_size)

  @staticmethod
  def take(embedded: scoring.Embedded, rows: np.ndarray) -> scoring.Embedded:
    """The given rows of `embed_for_scoring`'s output."""
    return embedded.take(rows)

  def score_embedded(self, embedded_a: scoring.Embedded,
                     embedded_b: scoring.Embedded) -> np.ndarray:
    """Probabilities of aligned `embed_for_scoring` outputs, as training scores its pairs (so the
    workdir's threshold applies)."""
    return scoring.score(self.model, self.params, embedded_a, embedded_b, self.fusion)

  def score_embedded_cnn(self, embedded_a: scoring.Embedded,
                         embedded_b: scoring.Embedded) -> np.ndarray:
    """The network's probabilities alone, from `embed_for_scoring` outputs."""
    return scoring.network_probabilities(self.model, self.params, embedded_a, embedded_b)

  def score(self, images_a, images_b) -> np.ndarray:
    """Same-person probabilities (N,) for two aligned batches of images (see `encode`)."""
    return self.score_embedded(self.embed_for_scoring(images_a), self.embed_for_scoring(images_b))

  def score_pairs(self, pairs) -> np.ndarray:
    """Probabilities (N,) for a datasets.PairSet or uint8 (N, 2, H, W, C) pairs, each distinct
    image embedded once."""
    images = pairs.images if hasattr(pairs, 'images') else np.asarray(pairs)
    return scoring.score_pairs(self.model, self.params, images, tta_flip=self.tta_flip,
                               fusion=self.fusion, batch_size=self.batch_size)

  def decide(self, probabilities) -> np.ndarray:
    """True where a probability reaches the threshold (same person)."""
    if self.threshold is None:
      raise ValueError('this Verifier has no threshold: pass one to load() or Verifier()')
    return np.asarray(probabilities) >= self.threshold

  def verify_faces(self, face_a: align.AlignedFace, face_b: align.AlignedFace) -> dict:
    """Scores two framed photos: {'probability', 'threshold', 'same', 'faces', 'warnings'}."""
    images = np.stack([self.preprocess(face_a.crop), self.preprocess(face_b.crop)])
    probability = float(self.score(images[:1], images[1:])[0])
    return {'probability': probability, 'threshold': self.threshold,
            'same': bool(self.decide(probability)),
            'faces': {'image_a': face_a.to_json(), 'image_b': face_b.to_json()},
            'warnings': face_a.warnings('image_a') + face_b.warnings('image_b')}

  def verify(self, path_a: str, path_b: str) -> dict:
    """Scores two image files: {'image_a', 'image_b', 'probability', 'threshold', 'same',
    'faces' (per image: framing, faces found, and the box, landmarks and confidence of the face
    used), 'warnings'}."""
    faces = self.read_face(path_a), self.read_face(path_b)
    return {'image_a': path_a, 'image_b': path_b, **self.verify_faces(*faces)}

  def verify_many(self, path_pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Probabilities for many file pairs, each distinct file read, framed and embedded once."""
    paths = sorted({p for pair in path_pairs for p in pair})
    index = {p: i for i, p in enumerate(paths)}
    images = np.stack([self.load_image(p) for p in paths]) if paths else np.zeros(
        (0, *self.image_shape), np.uint8)
    rows = np.array([(index[a], index[b]) for a, b in path_pairs], np.int64).reshape(-1, 2)
    return scoring.score_rows(self.model, self.params, self.embed_for_scoring(images), rows,
                              self.fusion)


def load(workdir: str, *, threshold: float | None = None, batch_size: int = 64,
         max_pixels: int = image_io.DEFAULT_MAX_PIXELS, with_fusion: bool = True,
         framing: Framing = Framing()) -> Verifier:
  """Loads a workdir's best checkpoint; the threshold defaults to the one in summary.json.

  Without summary.json (a run still training) and without `threshold`, the Verifier encodes and
  scores but has no threshold to decide with. `with_fusion=False` ignores a fusion stage and
  decides with the network's own threshold. `framing` says how image files are framed.
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'{workdir}: no such workdir')
  config, params = checkpointing.load_best(workdir)
  fusion = fusion_lib.load(workdir) if with_fusion else None
  if threshold is None and workdir_lib.has_summary(workdir):
    # Without the stage, the network's own threshold, kept beside the fused one when it was added.
    threshold = workdir_lib.read_threshold(workdir, ('threshold',) if with_fusion else (
        'cnn_only_threshold', 'threshold'))
  return Verifier(config, params, threshold, batch_size=batch_size, max_pixels=max_pixels,
                  fusion=fusion, framing=framing)
