"""Seeded "wild" frames of LFW faces: a 250x250 crop placed in a 640x480 photo-like frame.

Each frame pastes a deep-funneled crop, feathered at its square border, at a random place fully
inside a 640x480 canvas under one of CONDITIONS: placement only, random scale, rotation, a noise or
flat background, JPEG, brightness and contrast, a low-resolution face, or all of them at once. A
Frame carries the exact crop-to-frame affine map, so a caller knows where the face and eyes went.
Coordinates in both images are pixel indices: x = column, y = row, pixel centres at integers (so the
crop's centre is (124.5, 124.5)). Positive angles turn the face counter-clockwise as seen.

Preview on the first images of pairsDevTest.txt (one PNG per image and condition, frames.json with
the draws and maps, and a contact sheet sheet.png with a row per image and a column per condition):

  python experiments/wild_frames.py --lfw-dir $LFW_DIR --output runs/wild_preview --count 4

The face of preview row i is the first image of pair line i. Its background source is the second
image of the first pair line, from line i on (wrapping round), whose second person is someone else:
line i itself for a mismatched pair, a later line for a matched one.
"""

import argparse
import dataclasses
import functools
import io
import json
import math
import os
import pathlib
import time

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageEnhance
from PIL import ImageFilter

CANVAS = (480, 640)  # (height, width)
CONDITIONS = (
    'placement', 'scale', 'rotation', 'background', 'jpeg', 'photometric', 'lowres', 'all')
CROP_SIZE = 250
FEATHER_FRACTION = 0.12  # Width of the alpha ramp at each edge, as a fraction of the crop side.
SCALE_RANGE = (0.3, 1.2)
ANGLE_RANGE = (-30.0, 30.0)
JPEG_QUALITY_RANGE = (30, 60)  # Inclusive.
BRIGHTNESS_RANGE = (0.6, 1.4)
CONTRAST_RANGE = (0.6, 1.4)
LOWRES_WIDTH = 40
MIN_PHOTO_REGION = 100  # The photo background comes from a region at least this many pixels high.
PHOTO_BLUR_RADIUS = 8
GAUSSIAN_NOISE_SIGMA = (20.0, 60.0)


@dataclasses.dataclass(frozen=True)
class Frame:
  """One wild frame: the image, where the crop went in it, and what was drawn."""
  image: np.ndarray  # uint8 (480, 640, 3) RGB.
  crop_to_frame: np.ndarray  # float64 (2, 3): frame (x', y') = M @ [x, y, 1] of crop (x, y).
  condition: str
  params: dict  # JSON-serialisable draws; render_frame(face, source, condition, params) redraws.


def frame_rng(seed: int, image_index: int, condition: str) -> np.random.Generator:
  """An independent, deterministic random stream for one (seed, image, condition)."""
  return np.random.default_rng(
      np.random.SeedSequence([seed, image_index, _condition_index(condition)]))


def make_frame(face: np.ndarray, background_source: np.ndarray, condition: str,
               rng: np.random.Generator) -> Frame:
  """A wild frame of face under condition, with a background drawn from background_source."""
  _check_images(face, background_source)
  params = draw_params(condition, rng, background_source.shape)
  return render_frame(face, background_source, condition, params)


def draw_params(condition: str, rng: np.random.Generator, background_shape) -> dict:
  """Everything condition leaves to chance, drawn from rng in a fixed order."""
  _condition_index(condition)
  everything = condition == 'all'
  scale = float(rng.uniform(*SCALE_RANGE)) if condition in ('scale', 'all') else 1.0
  angle = float(rng.uniform(*ANGLE_RANGE)) if condition in ('rotation', 'all') else 0.0
  position = _draw_position(rng, scale, angle)
  if everything:
    background = str(rng.choice(['photo', 'noise', 'flat']))
  elif condition == 'background':
    background = str(rng.choice(['noise', 'flat']))
  else:
    background = 'photo'
  background_detail = _draw_background_detail(rng, background, background_shape)
  lowres = condition == 'lowres' or (everything and bool(rng.random() < 0.5))
  brightness, contrast = 1.0, 1.0
  if condition in ('photometric', 'all'):
    brightness = float(rng.uniform(*BRIGHTNESS_RANGE))
    contrast = float(rng.uniform(*CONTRAST_RANGE))
  jpeg_quality = None
  if condition in ('jpeg', 'all'):
    jpeg_quality = int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1))
  return {
      'position': position,  # Where the crop centre lands, in frame pixels.
      'scale': scale,
      'angle_degrees': angle,
      'background': background,
      'background_detail': background_detail,
      'lowres': lowres,
      'brightness': brightness,
      'contrast': contrast,
      'jpeg_quality': jpeg_quality,
  }


def render_frame(face: np.ndarray, background_source: np.ndarray, condition: str,
                 params: dict) -> Frame:
  """The frame that params (as draw_params returns them) describe; no randomness of its own."""
  _check_images(face, background_source)
  matrix = crop_to_frame_matrix(params['position'], params['scale'], params['angle_degrees'])
  canvas = _background(background_source, params['background'], params['background_detail'])
  _paste(canvas, _feathered_crop(face, params['lowres']), matrix)
  image = Image.fromarray(canvas)
  # Brightness first, then contrast about the brightened frame's mean grey, as ImageEnhance does.
  if params['brightness'] != 1.0:
    image = ImageEnhance.Brightness(image).enhance(params['brightness'])
  if params['contrast'] != 1.0:
    image = ImageEnhance.Contrast(image).enhance(params['contrast'])
  if params['jpeg_quality'] is not None:
    encoded = io.BytesIO()
    image.save(encoded, format='JPEG', quality=params['jpeg_quality'])
    image = Image.open(encoded).convert('RGB')
  return Frame(np.asarray(image), matrix, condition, params)


def crop_to_frame_matrix(position, scale: float, angle_degrees: float) -> np.ndarray:
  """The (2, 3) map that scales and turns the crop about its centre and puts the centre there."""
  theta = math.radians(angle_degrees)
  cos, sin = scale * math.cos(theta), scale * math.sin(theta)
  # y points down, so turning counter-clockwise as seen sends (1, 0) to (cos, -sin).
  linear = np.array([[cos, sin], [-sin, cos]])
  centre = np.full(2, (CROP_SIZE - 1) / 2)
  offset = np.asarray(position, np.float64) - linear @ centre
  return np.concatenate([linear, offset[:, None]], axis=1)


def crop_outline() -> np.ndarray:
  """The crop's outer corners (pixel edges, not centres) as (4, 2) crop coordinates."""
  low, high = -0.5, CROP_SIZE - 0.5
  return np.array([[low, low], [high, low], [high, high], [low, high]])


def _condition_index(condition: str) -> int:
  if condition not in CONDITIONS:
    raise ValueError(f'unknown condition {condition!r}: expected one of {CONDITIONS}')
  return CONDITIONS.index(condition)


def _check_images(face, background_source):
  if face.shape != (CROP_SIZE, CROP_SIZE, 3) or face.dtype != np.uint8:
    raise ValueError(f'face must be uint8 {(CROP_SIZE, CROP_SIZE, 3)}, '
                     f'got {face.dtype} {face.shape}')
  if background_source.ndim != 3 or background_source.shape[2] != 3:
    raise ValueError(f'background_source must be RGB (H, W, 3), got {background_source.shape}')
  if background_source.dtype != np.uint8:
    raise ValueError(f'background_source must be uint8, got {background_source.dtype}')


def _draw_position(rng, scale, angle_degrees):
  """A crop centre, uniform over the places where the turned, scaled crop fits in the canvas."""
  theta = math.radians(angle_degrees)
  half_extent = scale * CROP_SIZE / 2 * (abs(math.cos(theta)) + abs(math.sin(theta)))
  position = []
  for side in (CANVAS[1], CANVAS[0]):
    low, high = half_extent - 0.5, side - 0.5 - half_extent
    if low > high:
      raise ValueError(f'a crop at scale {scale} and {angle_degrees} degrees does not fit {CANVAS}')
    position.append(float(rng.uniform(low, high)))
  return position


def _draw_background_detail(rng, background, background_shape):
  if background == 'photo':
    height, width = background_shape[:2]
    aspect = CANVAS[1] / CANVAS[0]
    # A region of the canvas's aspect, so that resizing it to cover the canvas does not stretch it.
    max_width = min(width, height * aspect)
    min_width = min(max_width, MIN_PHOTO_REGION * aspect)
    region_width = float(rng.uniform(min_width, max_width))
    region_height = region_width / aspect
    left = float(rng.uniform(0, width - region_width))
    top = float(rng.uniform(0, height - region_height))
    return {'region': [left, top, region_width, region_height]}
  if background == 'noise':
    distribution = str(rng.choice(['uniform', 'gaussian']))
    detail = {'distribution': distribution, 'seed': int(rng.integers(2**31))}
    if distribution == 'gaussian':
      detail['mean'] = [float(value) for value in rng.uniform(64, 192, size=3)]
      detail['sigma'] = float(rng.uniform(*GAUSSIAN_NOISE_SIGMA))
    return detail
  return {'colour': [int(value) for value in rng.integers(0, 256, size=3)]}


def _background(source, background, detail):
  """The uint8 (480, 640, 3) canvas under the face."""
  height, width = CANVAS
  if background == 'photo':
    left, top, region_width, region_height = detail['region']
    box = (left, top, left + region_width, top + region_height)
    # Blurring at a quarter of the size and scaling up matches the full-size blur to within half a
    # grey level on average, and takes a fifth of the time.
    small = (width // 4, height // 4)
    photo = Image.fromarray(source).resize(small, Image.Resampling.BILINEAR, box=box)
    photo = photo.filter(ImageFilter.GaussianBlur(PHOTO_BLUR_RADIUS / 4))
    return np.array(photo.resize((width, height), Image.Resampling.BILINEAR))
  if background == 'noise':
    noise_rng = np.random.default_rng(detail['seed'])
    if detail['distribution'] == 'uniform':
      return noise_rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    noise = noise_rng.standard_normal((height, width, 3), dtype=np.float32) * detail['sigma']
    noise += np.asarray(detail['mean'], np.float32)
    return np.clip(np.rint(noise), 0, 255).astype(np.uint8)
  if background == 'flat':
    return np.broadcast_to(np.asarray(detail['colour'], np.uint8), (height, width, 3)).copy()
  raise ValueError(f'unknown background {background!r}')


@functools.cache
def _feather_alpha() -> np.ndarray:
  """uint8 (250, 250) alpha: a linear ramp from 0 at the border to 255 FEATHER_FRACTION inside."""
  index = np.arange(CROP_SIZE)
  ramp = (np.minimum(index, CROP_SIZE - 1 - index) + 0.5) / (FEATHER_FRACTION * CROP_SIZE)
  ramp = np.clip(ramp, 0, 1)
  return np.rint(255 * np.outer(ramp, ramp)).astype(np.uint8)


def _feathered_crop(face, lowres):
  """The face as an RGBA image with a feathered border, at 40 pixels' detail if lowres."""
  image = Image.fromarray(face)
  if lowres:
    # Down to 40 pixels wide and back up, bilinear both ways, so the placing below keeps its map.
    image = image.resize((LOWRES_WIDTH, LOWRES_WIDTH), Image.Resampling.BILINEAR)
    image = image.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
  image.putalpha(Image.fromarray(_feather_alpha()))
  return image


def _paste(canvas, crop, matrix):
  """Alpha-blends the RGBA crop, mapped by matrix, into canvas in place."""
  corners = crop_outline() @ matrix[:, :2].T + matrix[:, 2]
  x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
  x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, (CANVAS[1], CANVAS[0]))
  to_patch = np.vstack([matrix, [0, 0, 1]])
  to_patch[:2, 2] -= (x0, y0)
  # PIL puts pixel centres at +0.5 and wants the map from output to input, in its convention.
  half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
  unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
  patch_to_crop = half @ np.linalg.inv(to_patch) @ unhalf
  patch = crop.transform((int(x1 - x0), int(y1 - y0)), Image.Transform.AFFINE,
                         tuple(patch_to_crop[:2].ravel()), Image.Resampling.BICUBIC)
  patch = np.asarray(patch, np.float32)
  alpha = patch[..., 3:] / 255
  region = canvas[y0:y1, x0:x1].astype(np.float32)
  blended = region + alpha * (patch[..., :3] - region)
  canvas[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def read_pair_lines(pairs_path) -> list:
  """((name, number), (name, number)) for each pair line of an LFW pairs file after its header."""
  pairs = []
  for line in pathlib.Path(pairs_path).read_text().splitlines()[1:]:
    fields = line.split()
    if len(fields) == 3:
      pairs.append(((fields[0], int(fields[1])), (fields[0], int(fields[2]))))
    elif len(fields) == 4:
      pairs.append(((fields[0], int(fields[1])), (fields[2], int(fields[3]))))
    elif fields:
      raise ValueError(f'{pairs_path}: not a pair line: {line!r}')
  return pairs


def preview_sources(pairs, count) -> list:
  """(face, background source) image ids of the first count pair lines (see the module doc)."""
  sources = []
  for row in range(min(count, len(pairs))):
    face = pairs[row][0]
    for offset in range(len(pairs)):
      other = pairs[(row + offset) % len(pairs)][1]
      if other[0] != face[0]:
        sources.append((face, other))
        break
    else:
      raise ValueError(f'no pair line has a second image of someone other than {face[0]}')
  return sources


def load_lfw_image(lfw_dir, name, number) -> np.ndarray:
  """uint8 RGB of one deep-funneled LFW image."""
  path = pathlib.Path(lfw_dir) / 'lfw-deepfunneled' / name / f'{name}_{number:04d}.jpg'
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB'))


def contact_sheet(rows, thumbnail_width=192) -> Image.Image:
  """A grid of frames, a row per image and a column per condition, under a header of names."""
  thumbnail_height = thumbnail_width * CANVAS[0] // CANVAS[1]
  header = 16
  sheet = Image.new('RGB', (thumbnail_width * len(CONDITIONS),
                            header + thumbnail_height * len(rows)), 'white')
  draw = ImageDraw.Draw(sheet)
  for column, condition in enumerate(CONDITIONS):
    draw.text((column * thumbnail_width + 4, 2), condition, fill='black')
  for row, frames in enumerate(rows):
    for column, frame in enumerate(frames):
      thumbnail = Image.fromarray(frame.image).resize(
          (thumbnail_width, thumbnail_height), Image.Resampling.BILINEAR, reducing_gap=2.0)
      sheet.paste(thumbnail, (column * thumbnail_width, header + row * thumbnail_height))
  return sheet


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--lfw-dir', default=os.environ.get('LFW_DIR'),
                      help='extracted LFW with pairsDevTest.txt and lfw-deepfunneled/ ($LFW_DIR)')
  parser.add_argument('--output', required=True, help='folder for the PNGs (use runs/...)')
  parser.add_argument('--count', type=int, default=4, help='images, from the first pair line')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  if not args.lfw_dir:
    parser.error('--lfw-dir is required when LFW_DIR is unset')
  output = pathlib.Path(args.output)
  output.mkdir(parents=True, exist_ok=True)
  pairs = read_pair_lines(pathlib.Path(args.lfw_dir) / 'pairsDevTest.txt')
  rows, records, seconds = [], [], 0.0
  for image_index, (face_id, source_id) in enumerate(preview_sources(pairs, args.count)):
    face = load_lfw_image(args.lfw_dir, *face_id)
    source = load_lfw_image(args.lfw_dir, *source_id)
    frames = []
    for condition in CONDITIONS:
      start = time.perf_counter()
      frame = make_frame(face, source, condition, frame_rng(args.seed, image_index, condition))
      seconds += time.perf_counter() - start
      frames.append(frame)
      stem = f'{image_index:03d}_{face_id[0]}_{face_id[1]:04d}_{condition}'
      Image.fromarray(frame.image).save(output / f'{stem}.png')
      records.append({'file': f'{stem}.png', 'face': list(face_id), 'background': list(source_id),
                      'condition': condition, 'crop_to_frame': frame.crop_to_frame.tolist(),
                      'params': frame.params})
    rows.append(frames)
  (output / 'frames.json').write_text(json.dumps(records, indent=1) + '\n')
  contact_sheet(rows).save(output / 'sheet.png')
  frame_count = len(records)
  print(f'{frame_count} frames in {output}, {1000 * seconds / max(frame_count, 1):.1f} ms a frame; '
        f'contact sheet {output / "sheet.png"}')


if __name__ == '__main__':
  main()
