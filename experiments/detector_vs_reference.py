"""The JAX detector against the `mtcnn` package itself, on the same images.

  benchmarks/peers/.venv/bin/python benchmarks/peers/mtcnn_reference.py --lfw-sample 300 \
      --lfw-dir "$LFW_DIR" --images runs/mtcnn_ref/lfw300.txt --output runs/mtcnn_ref/lfw300.json
  python experiments/detector_vs_reference.py runs/mtcnn_ref/lfw300.json [more.json ...]

Reads the reference's detections (benchmarks/peers/mtcnn_reference.py, run in the peers venv with
TensorFlow), runs lfw_siamese.detection on each image, and pairs the two sets of faces per image
(greedily by box overlap, IoU at least 0.5). Prints the faces found by both, by one only, and for
the faces found by both the box overlap and each landmark's distance in pixels.
"""

import argparse
import json

import numpy as np
from PIL import Image
from tqdm import tqdm

from lfw_siamese.detection import detector as detector_lib


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
  return float(detector_lib.iou_matrix(np.stack([a, b]))[0, 1])


def match(reference: list[dict], ours: list[detector_lib.Face]) -> list[tuple[dict, object]]:
  """Pairs of (reference face, our face) overlapping by IoU >= 0.5, best overlaps first."""
  candidates = sorted(((box_iou(np.array(r['box']), o.box), i, j)
                       for i, r in enumerate(reference) for j, o in enumerate(ours)), reverse=True)
  used_r, used_o, pairs = set(), set(), []
  for overlap, i, j in candidates:
    if overlap >= 0.5 and i not in used_r and j not in used_o:
      used_r.add(i)
      used_o.add(j)
      pairs.append((reference[i], ours[j]))
  return pairs


def compare(path: str, detector: detector_lib.Detector) -> dict:
  """The comparison's numbers for one reference file."""
  with open(path) as f:
    reference = json.load(f)
  counts = dict(images=0, reference_faces=0, our_faces=0, matched=0, largest_same=0)
  overlaps, landmark_errors, confidence_gaps = [], [], []
  for item in tqdm(reference['images'], desc=path, unit='image'):
    faces = detector.detect(np.asarray(Image.open(item['path']).convert('RGB')))
    pairs = match(item['faces'], faces)
    counts['images'] += 1
    counts['reference_faces'] += len(item['faces'])
    counts['our_faces'] += len(faces)
    counts['matched'] += len(pairs)
    if item['faces'] and faces:
      largest = max(item['faces'], key=lambda r: max(r['box'][2] - r['box'][0],
                                                     r['box'][3] - r['box'][1]))
      counts['largest_same'] += box_iou(np.array(largest['box']), faces[0].box) >= 0.5
    for r, o in pairs:
      overlaps.append(box_iou(np.array(r['box']), o.box))
      landmark_errors.append(np.linalg.norm(np.array(r['landmarks']) - o.landmarks, axis=1))
      confidence_gaps.append(abs(r['confidence'] - o.confidence))
  errors = np.concatenate(landmark_errors) if landmark_errors else np.zeros(0)
  return {**counts, 'box_iou_median': float(np.median(overlaps)),
          'box_iou_min': float(np.min(overlaps)),
          'landmark_error_px_median': float(np.median(errors)),
          'landmark_error_px_p95': float(np.percentile(errors, 95)),
          'landmark_error_px_max': float(errors.max()),
          'landmarks_within_2px': float(np.mean(errors <= 2)),
          'confidence_gap_max': float(np.max(confidence_gaps))}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('references', nargs='+', help="mtcnn_reference.py's JSON outputs")
  args = parser.parse_args(argv)
  detector = detector_lib.load()
  for path in args.references:
    print(json.dumps({'reference': path, **compare(path, detector)}))


if __name__ == '__main__':
  main()
