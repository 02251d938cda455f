"""Reference MTCNN detections from the `mtcnn` package (1.0.0, TensorFlow) for checking the JAX
port.

  benchmarks/peers/.venv/bin/python benchmarks/peers/mtcnn_reference.py --images LIST.txt \
      --output OUT.json

Runs in the peers venv only (never the project's .venv): `pip install tensorflow-cpu==2.21.0
keras==3.15.1 mtcnn==1.0.0 pillow numpy` there. Each image is decoded with PIL as RGB uint8 and
passed to MTCNN().detect_faces(..., box_format='xyxy', output_type='numpy') with the package's
defaults (min_face_size 20, scale_factor 0.709, thresholds 0.6/0.7/0.8, NMS 0.5/0.7 union, 0.7
union, 0.7 min): unrounded floats, boxes clipped to [0, W-1] x [0, H-1] as the package does,
landmarks not clipped.
The samples in runs/mtcnn_ref/ were made with (from the repository root, P=benchmarks/peers):

  $P/.venv/bin/python $P/mtcnn_reference.py --lfw-sample 300 --lfw-dir "$LFW_DIR" \
      --images runs/mtcnn_ref/lfw300.txt --output runs/mtcnn_ref/lfw300.json
  $P/.venv/bin/python $P/mtcnn_reference.py --frames-from runs/mtcnn_ref/lfw300.txt --frames 10 \
      --frames-dir runs/mtcnn_ref/frames --images runs/mtcnn_ref/frames.txt \
      --output runs/mtcnn_ref/frames.json

--lfw-sample N: the people named in pairsDevTest.txt, sorted, N of them picked by
numpy.random.default_rng(0).choice(len, N, replace=False) (kept in name order), each with the lowest
image number that pairsDevTest.txt uses for them; the list is written to --images, then run.
--frames-from LIST: each of its first --frames images scaled by 0.5 (PIL bilinear) and pasted at
(x=300, y=100) on a 640x480 canvas of grey 128, saved as PNG in --frames-dir, listed in --images,
then run.
"""

import argparse
import importlib.metadata
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image

PARAMS = dict(min_face_size=20, min_size=12, scale_factor=0.709, threshold_pnet=0.6,
              threshold_rnet=0.7, threshold_onet=0.8, nms_pnet1=0.5, nms_pnet2=0.7, nms_rnet=0.7,
              nms_onet=0.7)
LANDMARKS = ('left_eye', 'right_eye', 'nose', 'mouth_left', 'mouth_right')
FRAME_SIZE, FRAME_AT, FRAME_SCALE, FRAME_GREY = (640, 480), (300, 100), 0.5, 128


def lfw_sample(lfw_dir: str, count: int, seed: int = 0) -> list[str]:
  """The lowest-numbered pairsDevTest.txt image of `count` seeded people from that file."""
  numbers: dict[str, set[int]] = {}
  with open(os.path.join(lfw_dir, 'pairsDevTest.txt'), encoding='utf-8') as f:
    next(f)
    for line in f:
      fields = line.split()
      pairs = [(fields[0], fields[1]), (fields[0], fields[2])] if len(fields) == 3 else [
          (fields[0], fields[1]), (fields[2], fields[3])]
      for name, number in pairs:
        numbers.setdefault(name, set()).add(int(number))
  names = sorted(numbers)
  picked = sorted(np.random.default_rng(seed).choice(len(names), size=count, replace=False))
  return [os.path.join(lfw_dir, 'lfw-deepfunneled', names[i],
                       f'{names[i]}_{min(numbers[names[i]]):04d}.jpg')
          for i in picked]


def make_frames(paths: list[str], frames_dir: str) -> list[str]:
  """Pastes each image, scaled by FRAME_SCALE, at FRAME_AT on a grey canvas; returns the PNG
  paths."""
  os.makedirs(frames_dir, exist_ok=True)
  out = []
  for path in paths:
    image = Image.open(path).convert('RGB')
    size = (round(image.width * FRAME_SCALE), round(image.height * FRAME_SCALE))
    canvas = Image.new('RGB', FRAME_SIZE, (FRAME_GREY,) * 3)
    canvas.paste(image.resize(size, Image.BILINEAR), FRAME_AT)
    out.append(os.path.join(frames_dir, os.path.splitext(os.path.basename(path))[0] + '.png'))
    canvas.save(out[-1])
  return out


def face_record(row: np.ndarray) -> dict:
  """One numpy row [image_id, x1, y1, x2, y2, confidence, 5 x's, 5 y's] as JSON-ready floats."""
  return dict(box=[float(v) for v in row[1:5]], confidence=float(row[5]),
              landmarks=[[float(row[6 + k]), float(row[11 + k])] for k in range(5)])


def detect_all(paths: list[str], threads: int) -> dict:
  """Runs the package's detector on each image and returns the report."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)
  import mtcnn  # pylint: disable=g-import-not-at-top
  detector = mtcnn.MTCNN()
  kwargs = dict(box_format='xyxy', output_type='numpy', **PARAMS)
  records = []
  for i, path in enumerate(paths):
    image = np.asarray(Image.open(path).convert('RGB'), dtype=np.uint8)
    if i == 0:
      # Untimed warm-up (first Keras calls build and allocate).
      detector.detect_faces(image, **kwargs)
    start = time.perf_counter()
    rows = detector.detect_faces(image, **kwargs)
    seconds = time.perf_counter() - start
    records.append(dict(path=path, height=image.shape[0], width=image.shape[1], seconds=seconds,
                        faces=[face_record(row) for row in np.asarray(rows, dtype=np.float64)]))
    if (i + 1) % 50 == 0 or i + 1 == len(paths):
      print(f'{i + 1}/{len(paths)} images, {np.mean([r["seconds"] for r in records]):.3f} s each',
            file=sys.stderr, flush=True)
  counts = [len(r['faces']) for r in records]
  return dict(
      package_version=importlib.metadata.version('mtcnn'), tensorflow_version=tf.__version__,
      keras_version=importlib.metadata.version('keras'), threads=threads,
      params=dict(PARAMS, box_format='xyxy', output_type='numpy', fit_to_image=True,
                  limit_boundaries_landmarks=False, landmarks_order=list(LANDMARKS),
                  input='PIL RGB uint8 ndarray'),
      summary=dict(images=len(records), faces_0=counts.count(0), faces_1=counts.count(1),
                   faces_2_plus=sum(c >= 2 for c in counts),
                   mean_seconds=(float(np.mean([r['seconds'] for r in records])) if records
                                 else None)),
      images=records)


def read_list(path: str) -> list[str]:
  """The non-empty lines of a list file."""
  with open(path, encoding='utf-8') as f:
    return [line.strip() for line in f if line.strip()]


def write_list(path: str, paths: list[str]) -> None:
  """Writes one path a line, making the folder."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(''.join(p + '\n' for p in paths))


def main() -> None:
  """Builds the list if asked, runs the detector, writes the JSON."""
  parser = argparse.ArgumentParser(description=' '.join(__doc__.split('\n\n')[0].split()))
  parser.add_argument('--images', required=True,
                      help='list of image paths, one a line (written first with --lfw-sample or '
                      '--frames-from)')
  parser.add_argument('--output', required=True, help='JSON report')
  parser.add_argument('--lfw-sample', type=int,
                      help='build --images from N seeded pairsDevTest.txt people')
  parser.add_argument('--lfw-dir', default=os.environ.get('LFW_DIR', '"$LFW_DIR"'))
  parser.add_argument('--frames-from', help='build --images as synthetic frames from this list')
  parser.add_argument('--frames', type=int, default=10, help='how many of --frames-from to use')
  parser.add_argument('--frames-dir', help='where the frames go (with --frames-from)')
  parser.add_argument('--threads', type=int, default=1, help='TensorFlow intra/inter-op threads')
  args = parser.parse_args()
  if args.lfw_sample:
    write_list(args.images, lfw_sample(args.lfw_dir, args.lfw_sample))
  elif args.frames_from:
    if not args.frames_dir:
      parser.error('--frames-from needs --frames-dir')
    write_list(args.images, make_frames(read_list(args.frames_from)[:args.frames], args.frames_dir))
  report = detect_all(read_list(args.images), args.threads)
  os.makedirs(os.path.dirname(args.output) or '.', exist_ok=True)
  with open(args.output, 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=1)
  print(json.dumps(report['summary']), file=sys.stderr)


if __name__ == '__main__':
  main()
