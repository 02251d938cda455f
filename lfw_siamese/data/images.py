"""Face image preprocessing as configured: centred square crop, antialiased resize, colour."""

import concurrent.futures
import dataclasses
import io
from typing import Sequence

import numpy as np
from PIL import Image

from lfw_siamese.data.lists import LfwDataError

SOURCE_SIDE = 250  # LFW images are 250x250; data.crop is measured in these pixels.
COLORS = {'grayscale': 1, 'rgb': 3}
# Below this many images a thread pool is not worth starting.
_MIN_IMAGES_FOR_POOL = 512
_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """The preprocessing fields of config.data."""
  color: str
  crop: int
  image_size: int

  @property
  def channels(self) -> int:
    return COLORS[self.color]

  @property
  def shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  def key(self) -> str:
    """A name for caches of images preprocessed this way."""
    return f'{self.color}-crop{self.crop}-size{self.image_size}'


def preprocessing(data_config) -> Preprocessing:
  """data.color, data.crop and data.image_size (config_check.check_data checks them)."""
  return Preprocessing(data_config.color, int(data_config.crop), int(data_config.image_size))


def preprocess_pil(image: Image.Image, settings: Preprocessing) -> np.ndarray:
  """Crops a centred square, resizes it (antialiased), converts colour; returns uint8 (H, W, C).

  data.crop is in pixels of a 250x250 LFW image; other sizes are cropped in proportion to their
  shorter side, so any face photo goes through the same geometry.
  """
  if image.mode not in ('L', 'RGB'):
    image = image.convert('RGB')
  width, height = image.size
  short = min(width, height)
  side = round(settings.crop * short / SOURCE_SIDE) if settings.crop else short
  side = max(1, min(side, short))
  left, top = (width - side) // 2, (height - side) // 2
  if (left, top, side, side) != (0, 0, width, height):
    image = image.crop((left, top, left + side, top + side))
  if side != settings.image_size:
    image = image.resize((settings.image_size, settings.image_size), Image.Resampling.LANCZOS)
  wanted_mode = 'L' if settings.channels == 1 else 'RGB'
  if image.mode != wanted_mode:
    image = image.convert(wanted_mode)  # 'L' is ITU-R 601-2 luma.
  array = np.asarray(image, dtype=np.uint8)
  return array[..., None] if array.ndim == 2 else array


def preprocess(image: np.ndarray, data_config) -> np.ndarray:
  """Any uint8 HxW, HxWx1, HxWx3 or HxWx4 image -> uint8 (H, W, C) exactly as in training."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
      image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
    raise ValueError(f'image: expected a uint8 HxW, HxWx1, HxWx3 or HxWx4 array, got '
                     f'{image.dtype} {image.shape}')
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return preprocess_pil(Image.fromarray(image), preprocessing(data_config))


def decode(data: bytes, settings: Preprocessing, channels: int,
           where: str = 'image') -> np.ndarray:
  """Decodes stored JPEG bytes (checking they have `channels` channels) and preprocesses them."""
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as error:  # PIL raises many types for corrupt data.
    raise LfwDataError(f'{where}: does not decode ({error})') from None
  stored = {'L': 1, 'RGB': 3}.get(image.mode)
  if stored != channels:
    raise LfwDataError(f'{where}: stored image is mode {image.mode}, but the dataset declares '
                       f'{channels} channel(s)')
  return preprocess_pil(image, settings)


def decode_many(blobs: Sequence[bytes], settings: Preprocessing, channels: int, *,
                names: Sequence[str] | None = None, workers: int = 1) -> np.ndarray:
  """Decodes and preprocesses many images -> uint8 (M, H, W, C).

  names label the images in error messages. workers > 1 decodes in threads (PIL releases the
  GIL while decoding and resizing): threads avoid a process pool's start-up, its pickling and
  its re-import of the caller's __main__.
  """
  out = np.empty((len(blobs),) + settings.shape, np.uint8)

  def decode_range(start: int):
    for i in range(start, min(start + _CHUNK, len(blobs))):
      out[i] = decode(blobs[i], settings, channels, names[i] if names else f'image {i}')

  starts = range(0, len(blobs), _CHUNK)
  if workers <= 1 or len(blobs) < _MIN_IMAGES_FOR_POOL:
    for start in starts:
      decode_range(start)
  else:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      list(pool.map(decode_range, starts))
  return out



def image_shape(data_config) -> tuple[int, int, int]:
  """(H, W, C) of images after preprocessing."""
  return preprocessing(data_config).shape
