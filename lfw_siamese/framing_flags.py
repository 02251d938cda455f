"""The framing flags that `verify` and `embed` share, and writing the crops the network saw."""

import argparse
import os

import numpy as np
from PIL import Image

from lfw_siamese import files
from lfw_siamese.detection import align


def add_flags(parser: argparse.ArgumentParser) -> None:
  """--aligned, --face, --no-face and --save-aligned."""
  parser.add_argument('--aligned', action='store_true',
                      help='the images are LFW-framed face crops already: no face detection')
  parser.add_argument('--face', type=int, default=0, metavar='INDEX',
                      help='which face to use where several are found (0 = the largest)')
  parser.add_argument('--no-face', choices=align.NO_FACE_CHOICES, default='error',
                      help='with no face found: an error (default), or a centre crop')
  parser.add_argument('--save-aligned', metavar='DIR',
                      help='write the crops the network saw (as PNG) into this folder')


def from_args(args: argparse.Namespace) -> align.Framing:
  """The align.Framing the flags ask for; ValueError for a negative --face."""
  if args.face < 0:
    raise ValueError(f'--face must be 0 or more, got {args.face}')
  return align.Framing(detect=not args.aligned, face_index=args.face, no_face=args.no_face)


def save_network_input(image: np.ndarray, source_path: str, folder: str) -> str:
  """Writes a preprocessed uint8 (H, W, C) image as FOLDER/<source file's stem>.png."""
  output = os.path.join(folder, os.path.splitext(os.path.basename(source_path))[0] + '.png')
  with files.atomic_write(output, 'wb') as f:
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format='PNG')
  return output
