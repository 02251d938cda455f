"""Finds faces in photos: MTCNN's image pyramid, proposals, refinement and landmarks.

  detector = detector.load()
  faces = detector.detect(image)  # uint8 (H, W, 3) RGB -> [Face], largest first

Follows the `mtcnn` package (1.0.0) step by step, so that its weights give its boxes: a pyramid of
area-resized images from the smallest face wanted, P-Net's windows with their box regression,
non-maximum suppression per scale and across scales, then R-Net and O-Net on bilinear crops of
the squared boxes. The networks run jitted, through JAX, on whichever device holds the arrays;
P-Net's inputs are padded to a few sizes and the crops' batches to powers of two, so that photos
of many sizes compile a bounded number of programs.
"""

import dataclasses

import jax
import numpy as np
from PIL import Image

from lfw_siamese.detection import networks

LANDMARK_NAMES = ('left_eye', 'right_eye', 'nose', 'mouth_left', 'mouth_right')  # As seen.
CELL, STRIDE = 12, 2  # P-Net's window and step.
_PAD_TO = 32  # P-Net's input sides are padded up to a multiple of this.


@dataclasses.dataclass(frozen=True)
class Settings:
  """The package's defaults: the smallest face looked for, the pyramid's step, the thresholds."""
  min_face_size: float = 20.0
  scale_factor: float = 0.709
  thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
  nms_pnet_scale: float = 0.5
  nms_pnet: float = 0.7
  nms_rnet: float = 0.7
  nms_onet: float = 0.7
  # Larger photos are searched at this longer side (faces under min_face_size there are missed):
  # a 12-megapixel photo at full size would take seconds for no face worth verifying.
  max_side: int = 1600


@dataclasses.dataclass(frozen=True)
class Face:
  """One detected face: corners (x1, y1, x2, y2), P(face) and five landmarks (x, y)."""
  box: np.ndarray
  confidence: float
  landmarks: np.ndarray  # (5, 2) in LANDMARK_NAMES' order

  @property
  def size(self) -> float:
    """The box's longer side, in pixels."""
    return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

  def to_json(self) -> dict:
    """The box, confidence and named landmarks, rounded to 0.1 pixel."""
    return {'box': [round(float(v), 1) for v in self.box],
            'confidence': round(float(self.confidence), 4),
            'landmarks': {name: [round(float(v), 1) for v in point]
                          for name, point in zip(LANDMARK_NAMES, self.landmarks)}}


def pyramid_scales(height: int, width: int, settings: Settings) -> list[float]:
  """The package's scales: 12 / min_face_size, times scale_factor per level, while P-Net fits."""
  min_side = min(height, width)
  count = round(-(np.log(min_side / CELL) / np.log(settings.scale_factor) + 1))
  first = CELL / settings.min_face_size
  scales = [first * settings.scale_factor ** i for i in range(max(count, 0))]
  return [s for s in scales if int(min_side * s) >= CELL]


def iou_matrix(boxes: np.ndarray, method: str = 'union') -> np.ndarray:
  """Pairwise overlap of (N, 4) corner boxes, over their union or over the smaller box."""
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  top_left = np.maximum(boxes[None, :, :2], boxes[:, None, :2])
  bottom_right = np.minimum(boxes[None, :, 2:], boxes[:, None, 2:])
  inter = np.prod(np.maximum(bottom_right - top_left, 0), axis=-1)
  if method == 'union':
    denominator = area[:, None] + area[None, :] - inter
  else:
    denominator = np.minimum(area[:, None], area[None, :])
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(denominator > 0, inter / denominator, 0.0)


def nms(rows: np.ndarray, threshold: float, method: str = 'union', sort: bool = True) -> np.ndarray:
  """Drops each row (x1, y1, x2, y2, score, ...) that overlaps a higher-scored one by more than
  `threshold`, whether or not that one was kept (the package's one-pass rule)."""
  if len(rows) == 0:
    return rows
  if sort:
    rows = rows[np.argsort(-rows[:, 4], kind='stable')]
  overlaps = np.triu(iou_matrix(rows[:, :4], method) > threshold, k=1)
  return rows[~overlaps.any(axis=0)]


def to_square(rows: np.ndarray) -> np.ndarray:
  """Boxes grown to squares about their centres."""
  rows = rows.copy()
  size = np.maximum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
  rows[:, :2] += (rows[:, 2:4] - rows[:, :2]) / 2 - size[:, None] / 2
  rows[:, 2:4] = rows[:, :2] + size[:, None]
  return rows


def regress(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Boxes moved by offsets given in units of their (inclusive) width and height."""
  rows = rows.copy()
  sides = rows[:, 2:4] - rows[:, :2] + 1
  rows[:, :4] += offsets * np.tile(sides, 2)
  return rows


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
  """Bilinear (N, side, side, C) crops of corner boxes, as tf.image.crop_and_resize samples them
  from boxes given as fractions of the image's size; samples outside the image are 0."""
  height, width = image.shape[:2]
  steps = np.arange(side) / (side - 1)

  def sample_at(start, end, length):
    return (start[:, None] / length + steps * (end - start)[:, None] / length) * (length - 1)

  ys = sample_at(boxes[:, 1], boxes[:, 3], height)  # (N, side)
  xs = sample_at(boxes[:, 0], boxes[:, 2], width)
  y0 = np.clip(np.floor(ys), 0, height - 1).astype(int)
  x0 = np.clip(np.floor(xs), 0, width - 1).astype(int)
  y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
  wy, wx = (ys - np.floor(ys))[:, :, None, None], (xs - np.floor(xs))[:, None, :, None]
  top_left, top_right = image[y0[:, :, None], x0[:, None, :]], image[y0[:, :, None], x1[:, None, :]]
  bottom_left = image[y1[:, :, None], x0[:, None, :]]
  bottom_right = image[y1[:, :, None], x1[:, None, :]]
  top = top_left + (top_right - top_left) * wx
  bottom = bottom_left + (bottom_right - bottom_left) * wx
  crops = top + (bottom - top) * wy
  inside = (((ys >= 0) & (ys <= height - 1))[:, :, None]
            & ((xs >= 0) & (xs <= width - 1))[:, None, :])
  return np.where(inside[..., None], crops, 0).astype(np.float32)


def normalize(image: np.ndarray) -> np.ndarray:
  """uint8 RGB -> float32 as the networks were trained on."""
  return (np.asarray(image, np.float32) - 127.5) / 128


def _padded(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


def _batch_size(count: int) -> int:
  """Crops are run in batches of a power of two, at least 16, so that few programs compile."""
  return max(16, 1 << (count - 1).bit_length())


class Detector:
  """MTCNN with its weights; `detect` finds the faces in a photo."""

  def __init__(self, params: dict, settings: Settings = Settings()):
    self.params = params
    self.settings = settings

  def _run(self, name: str, crops: np.ndarray) -> list[np.ndarray]:
    """A crop network on (N, side, side, 3) crops, batched in padded powers of two."""
    count = len(crops)
    padded = np.zeros((_batch_size(count), *crops.shape[1:]), np.float32)
    padded[:count] = crops
    return [np.asarray(out)[:count] for out in networks.apply(name, self.params[name], padded)]

  def _propose(self, image: np.ndarray) -> np.ndarray:
    """P-Net's squared proposals: rows (x1, y1, x2, y2, p) over the whole pyramid."""
    settings = self.settings
    height, width = image.shape[:2]
    picture = Image.fromarray(image)
    found = []
    for scale in pyramid_scales(height, width, settings):
      scaled_h, scaled_w = int(height * scale), int(width * scale)
      level = np.zeros((_padded(scaled_h, _PAD_TO), _padded(scaled_w, _PAD_TO), 3), np.float32)
      level[:scaled_h, :scaled_w] = normalize(picture.resize((scaled_w, scaled_h), Image.BOX))
      offsets, probability = networks.apply('pnet', self.params['pnet'], level[None])
      # Windows that lie in the level itself, not in its padding.
      rows_out = -(-(scaled_h - 2) // 2) - 4
      cols_out = -(-(scaled_w - 2) // 2) - 4
      probability = np.asarray(probability[0, :rows_out, :cols_out])
      ys, xs = np.nonzero(probability > settings.thresholds[0])
      if not len(ys):
        continue
      offsets = np.asarray(offsets[0])[ys, xs]
      corners = np.stack([xs * STRIDE + 1, ys * STRIDE + 1,
                          xs * STRIDE + CELL, ys * STRIDE + CELL], axis=1).astype(np.float64)
      rows = np.concatenate([corners + offsets * (CELL - 1), probability[ys, xs, None]], axis=1)
      rows = rows[np.argsort(-rows[:, 4], kind='stable')]
      rows[:, :4] /= scale
      found.append(nms(rows, settings.nms_pnet_scale, sort=False))
    if not found:
      return np.zeros((0, 5))
    return to_square(nms(np.concatenate(found), settings.nms_pnet))

  def detect(self, image: np.ndarray) -> list[Face]:
    """The faces in a uint8 (H, W, 3) RGB photo, largest first."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise ValueError(f'detect: expected a uint8 (H, W, 3) RGB image, got {image.dtype} '
                       f'{image.shape}')
    settings = self.settings
    scale = min(1.0, settings.max_side / max(image.shape[:2]))
    if scale < 1:
      size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
      faces = self.detect(np.asarray(Image.fromarray(image).resize(size, Image.BOX)))
      return [Face(face.box / scale, face.confidence, face.landmarks / scale) for face in faces]
    rows = self._propose(image)
    normalized = normalize(image) if len(rows) else None
    if len(rows):
      offsets, probability = self._run('rnet', crop_and_resize(normalized, rows, 24))
      rows = regress(np.concatenate([rows[:, :4], probability[:, None]], axis=1), offsets)
      rows = rows[rows[:, 4] > settings.thresholds[1]]
      rows = to_square(nms(rows, settings.nms_rnet))
    if len(rows):
      offsets, landmarks, probability = self._run('onet', crop_and_resize(normalized, rows, 48))
      sides = rows[:, 2:4] - rows[:, :2] + 1
      xs = landmarks[:, :5] * sides[:, :1] + rows[:, :1] - 1
      ys = landmarks[:, 5:] * sides[:, 1:2] + rows[:, 1:2] - 1
      rows = regress(np.concatenate([rows[:, :4], probability[:, None]], axis=1), offsets)
      rows = np.concatenate([rows, xs, ys], axis=1)
      rows = nms(rows[rows[:, 4] > settings.thresholds[2]], settings.nms_onet, method='min')
    height, width = image.shape[:2]
    faces = []
    for row in rows:
      box = np.clip(row[:4], 0, [width - 1, height - 1, width - 1, height - 1])
      faces.append(Face(box, float(row[4]), np.stack([row[5:10], row[10:15]], axis=1)))
    return sorted(faces, key=lambda face: -face.size)


def load(settings: Settings = Settings(), device: jax.Device | None = None) -> Detector:
  """A Detector with the installed `mtcnn` package's weights, on `device` (JAX's default)."""
  params = networks.load_params()
  if device is not None:
    params = jax.device_put(params, device)
  return Detector(params, settings)
