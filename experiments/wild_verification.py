"""How verification holds up on photos framed unlike LFW: View 1 test pairs as wild frames.

  LFW_DIR=path/to/lfw python experiments/wild_verification.py --workdir runs/default \
      --pairs 400 --output runs/wild.json

Takes a seeded, balanced sample of pairsDevTest's pairs; makes each image into a wild frame
(experiments/wild_frames.py) under each condition, and also keeps the original LFW crops; then
scores every pair two ways: as today's tools did without detection (the frame taken as an
LFW-framed crop) and with detection and alignment (the largest face found, as `verify` uses it; a
centre crop where none is found). For each condition and way it prints the detection rate (a face
whose box holds the true face centre found at all, and the largest face being it), and the
accuracy at the workdir's threshold, the best threshold's accuracy and the AUC of the fused score
and of the network alone (at its own validation threshold). Also the accuracy by the size of the
smaller face of a pair, to say below which size a face is too small to verify reliably.
"""

import argparse
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from lfw_siamese import inference
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import lists
from lfw_siamese.detection import align
from lfw_siamese.evaluation import metrics

_spec = importlib.util.spec_from_file_location(
    'wild_frames', pathlib.Path(__file__).with_name('wild_frames.py'))
wild_frames = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wild_frames)

FACE_CENTRE = np.array([124.5, 130.0])  # Where LFW's crops put the middle of the face box.
SIZE_BINS = (0, 30, 40, 50, 60, 80, 1_000)


def sample_pairs(lfw_dir: str, count: int, seed: int) -> list[lists.Pair]:
  """count / 2 matched and count / 2 mismatched pairs of pairsDevTest, drawn with a seed."""
  pairs = lists.read_pairs(os.path.join(lfw_dir, 'pairsDevTest.txt'))[0]
  rng = np.random.default_rng(seed)
  chosen = []
  for label in (1, 0):
    group = [p for p in pairs if p.label == label]
    chosen += [group[i] for i in sorted(rng.choice(len(group), count // 2, replace=False))]
  return chosen


def read_face(lfw_dir: str, name: str, number: int) -> np.ndarray:
  path = os.path.join(lfw_dir, 'lfw-deepfunneled', name, f'{name}_{number:04d}.jpg')
  return np.asarray(Image.open(path).convert('RGB'))


def true_face_found(face, crop_to_frame: np.ndarray | None) -> bool:
  """Whether a detected face's box holds the pasted face's centre."""
  centre = FACE_CENTRE if crop_to_frame is None else crop_to_frame @ np.append(FACE_CENTRE, 1)
  x1, y1, x2, y2 = face.box
  return bool(x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2)


def frame_images(images, backgrounds, condition: str, seed: int):
  """(frame, crop_to_frame) per image: the image itself under 'original'."""
  if condition == 'original':
    return [(image, None) for image in images]
  out = []
  for index, (image, background) in enumerate(zip(images, backgrounds)):
    frame = wild_frames.make_frame(image, background, condition,
                                   wild_frames.frame_rng(seed, index, condition))
    out.append((frame.image, frame.crop_to_frame))
  return out


def score_way(verifier, framed: list, rows: np.ndarray, labels: np.ndarray,
              thresholds: tuple[float, float]) -> dict:
  """Fused and network-alone numbers for images framed one way."""
  batch = np.stack([verifier.preprocess(image) for image in framed])
  embedded = verifier.embed_for_scoring(batch)
  a, b = verifier.take(embedded, rows[:, 0]), verifier.take(embedded, rows[:, 1])
  out = {}
  for name, scores, threshold in (('fused', verifier.score_embedded(a, b), thresholds[0]),
                                  ('network', verifier.score_embedded_cnn(a, b), thresholds[1])):
    best_threshold = metrics.best_threshold(scores, labels)
    out[name] = {'acc': float(np.mean((scores >= threshold) == labels)),
                 'best_acc': float(np.mean((scores >= best_threshold) == labels)),
                 'auc': float(metrics.roc_auc(scores, labels))}
    out[name]['correct'] = ((scores >= threshold) == labels).tolist()
  return out


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--lfw-dir', default=os.environ.get('LFW_DIR', ''))
  parser.add_argument('--pairs', type=int, default=400)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--conditions', nargs='*', default=('original',) + wild_frames.CONDITIONS)
  parser.add_argument('--output')
  args = parser.parse_args(argv)
  if not args.lfw_dir:
    sys.exit('set LFW_DIR or --lfw-dir')
  verifier = inference.load(args.workdir)
  summary = workdir_lib.read_summary(args.workdir)
  thresholds = (verifier.threshold, summary.get('cnn_only_threshold', verifier.threshold))
  pairs = sample_pairs(args.lfw_dir, args.pairs, args.seed)
  keys = sorted({(n, i) for p in pairs for n, i in ((p.name1, p.number1), (p.name2, p.number2))})
  index = {key: i for i, key in enumerate(keys)}
  images = [read_face(args.lfw_dir, *key) for key in keys]
  # Each image's background comes from the next image in the list of another person.
  backgrounds = [images[next(j % len(keys) for j in range(i + 1, i + len(keys))
                             if keys[j % len(keys)][0] != keys[i][0])] for i in range(len(keys))]
  rows = np.array([(index[(p.name1, p.number1)], index[(p.name2, p.number2)]) for p in pairs])
  labels = np.array([p.label for p in pairs])
  results = {'workdir': args.workdir, 'pairs': len(pairs), 'images': len(keys),
             'threshold': thresholds[0], 'cnn_only_threshold': thresholds[1], 'conditions': {}}
  for condition in args.conditions:
    framed = frame_images(images, backgrounds, condition, args.seed)
    aligned, any_true, largest_true, sizes = [], 0, 0, []
    for image, matrix in tqdm(framed, desc=condition, unit='image'):
      faces = verifier.detector.detect(image)
      any_true += any(true_face_found(face, matrix) for face in faces)
      largest_true += bool(faces) and true_face_found(faces[0], matrix)
      sizes.append(faces[0].size if faces else 0.0)
      aligned.append(align.align_face(image, faces[0]) if faces else image)
    result = {'detected': any_true / len(keys), 'largest_is_face': largest_true / len(keys),
              'without_detection': score_way(verifier, [f for f, _ in framed], rows, labels,
                                             thresholds),
              'with_detection': score_way(verifier, aligned, rows, labels, thresholds)}
    pair_sizes = np.minimum(np.array(sizes)[rows[:, 0]], np.array(sizes)[rows[:, 1]])
    correct = np.array(result['with_detection']['network']['correct'])
    result['network_acc_by_face_size'] = {
        f'{low}-{high}': [float(correct[(pair_sizes >= low) & (pair_sizes < high)].mean()),
                          int(((pair_sizes >= low) & (pair_sizes < high)).sum())]
        for low, high in zip(SIZE_BINS[:-1], SIZE_BINS[1:])
        if ((pair_sizes >= low) & (pair_sizes < high)).any()}
    for way in ('without_detection', 'with_detection'):
      for name in ('fused', 'network'):
        result[way][name].pop('correct')
    results['conditions'][condition] = result
    print(json.dumps({condition: result}), flush=True)
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  main()
