"""Face detection and alignment time for one photo: `python benchmarks/detect_time.py [--rounds 20]`.

Times detection (the pyramid, P-Net, R-Net, O-Net) and the alignment warp of a 640x480 photo with
one face (an LFW crop when LFW_DIR is set, else a synthetic image with no face, which times the
pyramid and P-Net alone), after a warm-up call that compiles the networks. Prints the median and
the 90th percentile over the rounds, and the time split per stage.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
from PIL import Image

from lfw_siamese.detection import align
from lfw_siamese.detection import detector as detector_lib


def photo(lfw_dir: str) -> np.ndarray:
  """A 640x480 grey photo with an LFW face 150 pixels wide in it (or none without LFW)."""
  canvas = np.full((480, 640, 3), 128, np.uint8)
  path = os.path.join(lfw_dir, 'lfw-deepfunneled', 'Aaron_Peirsol', 'Aaron_Peirsol_0001.jpg')
  if lfw_dir and os.path.exists(path):
    face = Image.open(path).convert('RGB').resize((150, 150), Image.BILINEAR)
    canvas[120:270, 300:450] = np.asarray(face)
  return canvas


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--lfw-dir', default=os.environ.get('LFW_DIR', ''))
  args = parser.parse_args()
  image = photo(args.lfw_dir)
  detector = detector_lib.load()
  detector.detect(image)  # Compiles.
  totals, proposals, aligns = [], [], []
  for _ in range(args.rounds):
    start = time.perf_counter()
    detector._propose(image)  # pylint: disable=protected-access
    proposals.append(time.perf_counter() - start)
    start = time.perf_counter()
    faces = detector.detect(image)
    middle = time.perf_counter()
    if faces:
      align.align_face(image, faces[0])
    aligns.append(time.perf_counter() - middle)
    totals.append(time.perf_counter() - start)
  ms = lambda values: round(1000 * statistics.median(values), 1)
  print(json.dumps({'photo': '640x480', 'faces': len(faces), 'rounds': args.rounds,
                    'detect_and_align_ms_median': ms(totals),
                    'detect_and_align_ms_p90': round(1000 * float(np.percentile(totals, 90)), 1),
                    'pyramid_and_pnet_ms': ms(proposals),
                    'rnet_onet_ms': round(ms(totals) - ms(proposals) - ms(aligns), 1),
                    'align_ms': ms(aligns)}))


if __name__ == '__main__':
  main()
