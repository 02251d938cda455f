"""Reading user-supplied image files safely: any PIL format, bounded size, one-line errors."""

import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # About a 7,000 x 6,000 photo; far beyond any face image.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm',
                    '.pgm', '.pbm')


class ImageFileError(ValueError):
  """A file that cannot be used as an image; the message names the file."""

  def __init__(self, path: str, problem: str):
    super().__init__(f'{path}: {problem}')
    self.path = path


def read_rgb(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Decodes an image file into uint8 (H, W, 3) RGB: grayscale, RGBA and palettes are converted.

  Raises ImageFileError naming the file when it is missing, unreadable, not an image, truncated
  or larger than `max_pixels` (checked from the header, before decoding).
  """
  if not os.path.exists(path):
    raise ImageFileError(path, 'no such file')
  if os.path.isdir(path):
    raise ImageFileError(path, 'is a folder, not an image file')
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(path) as image:
        width, height = image.size
        if width * height > max_pixels:
          raise ImageFileError(path, f'image is {width}x{height} = {width * height:,} pixels, '
                               f'more than the limit of {max_pixels:,}')
        image.load()
        image = ImageOps.exif_transpose(image)
        return np.asarray(_to_rgb(image), dtype=np.uint8)
  except ImageFileError:
    raise
  except UnidentifiedImageError:
    raise ImageFileError(path, 'not an image file (or a format PIL cannot read)') from None
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ImageFileError(path, f'refused as a possible decompression bomb ({e})') from None
  except PermissionError:
    raise ImageFileError(path, 'permission denied') from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageFileError(path, f'unreadable or truncated image ({e})') from None


def _to_rgb(image: Image.Image) -> Image.Image:
  """Converts any PIL mode to RGB, compositing transparency on white."""
  if image.mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA'):
    image = image.convert('RGBA')
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert('RGB')
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
    # High bit-depth grayscale: scale to 8 bits by its own range.
    array = np.asarray(image, dtype=np.float64)
    low, high = array.min(), array.max()
    array = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
    return Image.fromarray(array.round().astype(np.uint8)).convert('RGB')
  return image.convert('RGB')


def find_images(folder: str) -> list[str]:
  """Image files under `folder`, recursively, by extension, sorted; hidden entries skipped."""
  if not os.path.isdir(folder):
    raise ImageFileError(folder, 'no such folder')
  found = []
  for root, folders, files in os.walk(folder):
    folders[:] = sorted(f for f in folders if not f.startswith('.'))
    found.extend(os.path.join(root, f) for f in files
                 if not f.startswith('.') and f.lower().endswith(IMAGE_EXTENSIONS))
  return sorted(found)
