"""Aligning a detected face to the training images' framing: a similarity transform from its five
landmarks to where the detector puts them on LFW's own crops, then a 250x250 crop like LFW's."""

import dataclasses

import numpy as np
from PIL import Image

from lfw_siamese.detection import detector as detector_lib

SIDE = 250  # LFW's images, which the configs' data.crop is measured in.
# Median landmarks (LANDMARK_NAMES' order) the detector finds on 2,000 View 1 training images,
# measured by experiments/alignment_template.py.
TEMPLATE = np.array([[104.0, 112.5], [145.8, 111.6], [125.0, 136.6], [107.5, 157.7],
                     [144.2, 156.9]])
NO_FACE_CHOICES = ('error', 'center')
# Faces narrower than this get a warning: on the wild frames of experiments/wild_verification.py
# the network's accuracy falls to 0.43 under 30 pixels (RESULTS.md); 40 leaves a margin.
MIN_RELIABLE_FACE = 40


@dataclasses.dataclass(frozen=True)
class Framing:
  """How photos are framed for the network: detected and aligned (`detect`), or taken as they are;
  which face of several (0 = the largest); and, with no face, an error or a centre crop."""
  detect: bool = True
  face_index: int = 0
  no_face: str = 'error'

  def __post_init__(self):
    if self.no_face not in NO_FACE_CHOICES or self.face_index < 0:
      raise ValueError(f'framing: no_face must be one of {NO_FACE_CHOICES} and face_index at '
                       f'least 0, got {self.no_face!r} and {self.face_index}')


class NoFaceError(ValueError):
  """A photo in which the detector found no face (or not the one asked for); names the file."""

  def __init__(self, path: str, problem: str):
    super().__init__(f'{path}: {problem}')
    self.path = path


@dataclasses.dataclass(frozen=True)
class AlignedFace:
  """What the network is shown for one photo, and how it was framed."""
  crop: np.ndarray  # uint8 (H, W, 3): 250x250 when aligned, else the photo as given
  framing: str  # 'aligned' (detected and aligned), 'center' (no face: centre crop) or 'as given'
  faces: list[detector_lib.Face]  # every face found, largest first ([] when not detected)
  face_index: int | None = None  # which of them was aligned

  @property
  def face(self) -> detector_lib.Face | None:
    return None if self.face_index is None else self.faces[self.face_index]

  @property
  def small(self) -> bool:
    """Whether the face used is too small to verify reliably."""
    return self.face is not None and self.face.size < MIN_RELIABLE_FACE

  def to_json(self) -> dict:
    """The framing, the faces found and, for the face used, its box, landmarks and confidence."""
    out = {'framing': self.framing, 'faces_found': len(self.faces)}
    if self.face is not None:
      out.update(face_index=self.face_index, **self.face.to_json(), small_face=self.small)
    return out

  def warnings(self, name: str) -> list[str]:
    """What a reader of the score should know: a centre crop, several faces, a small face."""
    found = []
    if self.framing == 'center':
      found.append(f'{name}: no face found; scored a centre crop of the whole image')
    if len(self.faces) > 1:
      found.append(f'{name}: {len(self.faces)} faces found; used face {self.face_index} '
                   f'(0 = the largest; --face picks another)')
    if self.small:
      found.append(f'{name}: the face is {self.face.size:.0f} pixels wide, under '
                   f'{MIN_RELIABLE_FACE}: its score is unreliable')
    return found


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """The (2, 3) rotation, uniform scale and translation that best maps source points onto target
  points in least squares (Umeyama 1991)."""
  source_mean, target_mean = source.mean(0), target.mean(0)
  source_centred, target_centred = source - source_mean, target - target_mean
  covariance = target_centred.T @ source_centred / len(source)
  u, singular, vt = np.linalg.svd(covariance)
  sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
  rotation = u @ sign @ vt
  scale = np.trace(np.diag(singular) @ sign) / source_centred.var(0).sum()
  translation = target_mean - scale * rotation @ source_mean
  return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray, side: int = SIDE) -> np.ndarray:
  """The side x side image whose pixel p shows the photo at the inverse of `matrix` applied to p
  (bicubic; mid-grey beyond the photo's edges)."""
  inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
  picture = Image.fromarray(image)
  warped = picture.transform((side, side), Image.Transform.AFFINE, inverse.ravel().tolist(),
                             Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
  return np.asarray(warped)


def align_face(image: np.ndarray, face: detector_lib.Face) -> np.ndarray:
  """A 250x250 crop of `image` with `face`'s landmarks moved onto TEMPLATE."""
  return warp(image, similarity(face.landmarks, TEMPLATE))


def align(image: np.ndarray, detector: detector_lib.Detector, *, face_index: int = 0,
          no_face: str = 'error', name: str = 'image') -> AlignedFace:
  """Detects the faces in a uint8 (H, W, 3) photo and aligns the `face_index`-th largest.

  With no face found, no_face='error' raises NoFaceError naming the photo; 'center' gives the
  photo as it is, which preprocessing then crops at its centre as it does LFW's images.
  """
  if no_face not in NO_FACE_CHOICES:
    raise ValueError(f'no_face: expected one of {NO_FACE_CHOICES}, got {no_face!r}')
  faces = detector.detect(image)
  if face_index >= len(faces) and faces:
    raise NoFaceError(name, f'face {face_index} asked for, but only {len(faces)} found '
                      f'(indices 0-{len(faces) - 1}, largest first)')
  if not faces:
    if no_face == 'error':
      raise NoFaceError(name, 'no face found (--no-face=center scores a centre crop instead; '
                        '--aligned takes the image as an LFW-framed crop)')
    return AlignedFace(np.asarray(image), 'center', faces)
  return AlignedFace(align_face(image, faces[face_index]), 'aligned', faces, face_index)
