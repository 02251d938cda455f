"""Where the detector puts the five landmarks on LFW's own crops, and how often it finds the face.

  LFW_DIR=path/to/lfw python experiments/alignment_template.py --split train --count 2000
  LFW_DIR=path/to/lfw python experiments/alignment_template.py --split test

`--split train` runs the detector over a seeded sample of View 1 training images
(peopleDevTrain's people) and prints the median of each landmark over the images whose largest
face holds the image centre: the template that detection/align.py's TEMPLATE keeps, so that an
aligned photo is framed as the network's training crops are. `--split test` runs it over every
distinct image of pairsDevTest and prints the detection rate: any face found, and the largest
face being the labelled person's (its box holding the image centre, as LFW's crops are centred on
that person). Both write their numbers as JSON with --output.
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from lfw_siamese.data import lists
from lfw_siamese.detection import align
from lfw_siamese.detection import detector as detector_lib


def image_path(lfw_dir: str, name: str, number: int) -> str:
  return os.path.join(lfw_dir, 'lfw-deepfunneled', name, f'{name}_{number:04d}.jpg')


def training_images(lfw_dir: str, count: int, seed: int) -> list[str]:
  """A seeded sample of the View 1 training people's images."""
  people = lists.read_people(os.path.join(lfw_dir, 'peopleDevTrain.txt'))[0]
  paths = [image_path(lfw_dir, p.name, i) for p in people for i in range(1, p.count + 1)]
  chosen = np.random.default_rng(seed).choice(len(paths), min(count, len(paths)), replace=False)
  return [paths[i] for i in sorted(chosen)]


def test_images(lfw_dir: str) -> list[str]:
  """Every distinct image of the View 1 test pairs."""
  pairs = lists.read_pairs(os.path.join(lfw_dir, 'pairsDevTest.txt'))[0]
  return sorted({image_path(lfw_dir, name, number) for p in pairs
                 for name, number in ((p.name1, p.number1), (p.name2, p.number2))})


def holds_centre(face: detector_lib.Face, side: int = align.SIDE) -> bool:
  x1, y1, x2, y2 = face.box
  return x1 <= side / 2 <= x2 and y1 <= side / 2 <= y2


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--lfw-dir', default=os.environ.get('LFW_DIR', ''))
  parser.add_argument('--split', choices=('train', 'test'), default='train')
  parser.add_argument('--count', type=int, default=2000, help='training images sampled')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--output', help='write the numbers as JSON here')
  args = parser.parse_args(argv)
  if not args.lfw_dir:
    sys.exit('set LFW_DIR or --lfw-dir')
  paths = (training_images(args.lfw_dir, args.count, args.seed) if args.split == 'train'
           else test_images(args.lfw_dir))
  detector = detector_lib.load()
  found, centred, landmarks = 0, 0, []
  for path in tqdm(paths, desc='detecting', unit='image'):
    faces = detector.detect(np.asarray(Image.open(path).convert('RGB')))
    found += bool(faces)
    if faces and holds_centre(faces[0]):
      centred += 1
      landmarks.append(faces[0].landmarks)
  result = {'split': args.split, 'images': len(paths), 'any_face': found / len(paths),
            'largest_face_centred': centred / len(paths)}
  if args.split == 'train':
    template = np.median(np.stack(landmarks), axis=0)
    spread = np.median(np.abs(np.stack(landmarks) - template), axis=0)
    result.update(template=np.round(template, 1).tolist(),
                  median_abs_deviation=np.round(spread, 1).tolist())
  print(json.dumps(result))
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  main()
