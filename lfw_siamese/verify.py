"""Same person or not: `python -m lfw_siamese.verify --workdir DIR IMAGE_A IMAGE_B` (or --pairs).

Faces are detected and aligned to LFW's framing first (the largest of several, or --face INDEX);
--aligned takes images that are LFW-framed crops already as they are. With no face found, the image
is an error unless --no-face=center, which scores a centre crop and says so.
The threshold is the one chosen on validation pairs (WORKDIR/summary.json) unless --threshold.
A pairs CSV has two columns of image paths (relative paths are relative to the CSV's folder),
an optional header `image_a,image_b`, and optionally a third column that is copied through.
"""

import argparse
import contextlib
import csv
import json
import os
import sys
from typing import NamedTuple

from lfw_siamese import files
from lfw_siamese import framing_flags
from lfw_siamese.data import image_io
from lfw_siamese.data import lists
from lfw_siamese.detection import align


class UsageError(ValueError):
  """A bad command line or input file; printed as one line."""


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m lfw_siamese.verify',
      description='Say whether two face images show the same person, with a trained workdir.')
  parser.add_argument('--workdir', required=True, help='a training workdir (checkpoints/, '
                      'summary.json)')
  parser.add_argument('images', nargs='*', metavar='IMAGE', help='two image files')
  parser.add_argument('--pairs', metavar='FILE.csv', help='a CSV of image pairs to score')
  parser.add_argument('--output', metavar='SCORES.csv',
                      help='with --pairs: where to write the scores (default: stdout)')
  parser.add_argument('--json', action='store_true', help='print one JSON object')
  parser.add_argument('--threshold', type=float,
                      help="override the workdir's threshold (chosen on validation pairs)")
  parser.add_argument('--max-pixels', type=int, default=image_io.DEFAULT_MAX_PIXELS,
                      help='refuse images with more pixels than this (default %(default)s)')
  parser.add_argument('--batch-size', type=int, default=64)
  framing_flags.add_flags(parser)
  parser.add_argument('--figure', metavar='PAIR.png',
                      help='with two images: draw each photo with its face box and landmarks '
                      'beside the aligned crop, and the decision')
  return parser


class PairRow(NamedTuple):
  image_a: str
  image_b: str
  extra: str
  line: int


def read_pairs_csv(path: str) -> list[PairRow]:
  """The rows of a pairs CSV; paths resolved against the CSV's folder."""
  if not os.path.isfile(path):
    raise UsageError(f'{path}: no such file')
  folder = os.path.dirname(os.path.abspath(path))
  rows = []
  try:
    with open(path, newline='') as f:
      for line_number, row in enumerate(csv.reader(f), 1):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith('#'):
          continue
        if line_number == 1 and [c.strip().lower() for c in row[:2]] == ['image_a', 'image_b']:
          continue
        if len(row) < 2 or len(row) > 3:
          raise UsageError(f'{path}:{line_number}: expected "image_a,image_b[,extra]", got '
                           f'{",".join(row)!r}')
        a, b = (os.path.join(folder, cell.strip()) for cell in row[:2])
        rows.append(PairRow(a, b, row[2].strip() if len(row) == 3 else '', line_number))
  except UnicodeDecodeError:
    raise UsageError(f'{path}: not a text CSV file') from None
  if not rows:
    raise UsageError(f'{path}: no pairs in it')
  return rows


def _score_pairs_csv(verifier, args) -> None:
  rows = read_pairs_csv(args.pairs)
  try:
    probabilities = verifier.verify_many([(row.image_a, row.image_b) for row in rows])
  except (image_io.ImageFileError, align.NoFaceError) as e:
    line = next(row.line for row in rows if e.path in (row.image_a, row.image_b))
    raise UsageError(f'{args.pairs}:{line}: {e}') from None
  same = verifier.decide(probabilities)
  with (files.atomic_write(args.output, newline='') if args.output
        else contextlib.nullcontext(sys.stdout)) as output:
    writer = csv.writer(output)
    writer.writerow(['image_a', 'image_b', 'probability', 'same', 'extra'])
    for row, p, s in zip(rows, probabilities, same):
      writer.writerow([row.image_a, row.image_b, f'{p:.6f}', int(s), row.extra])
  if args.json:
    print(json.dumps({'pairs': len(rows), 'same': int(same.sum()), 'threshold': verifier.threshold,
                      'output': args.output}))
  elif args.output:
    print(f'scored {len(rows)} pairs ({int(same.sum())} same at threshold '
          f'{verifier.threshold:.4f}) -> {args.output}')


def run(argv: list[str]) -> int:
  """Parses the command line, scores, prints; returns the exit status."""
  args = _parser().parse_args(argv)
  if args.pairs and args.images:
    raise UsageError('give either two images or --pairs FILE.csv, not both')
  if not args.pairs and len(args.images) != 2:
    raise UsageError(f'expected two images (or --pairs FILE.csv), got {len(args.images)}')
  if args.output and not args.pairs:
    raise UsageError('--output goes with --pairs')
  if args.pairs and (args.figure or args.save_aligned):
    raise UsageError('--figure and --save-aligned go with two images, not --pairs')
  if args.max_pixels <= 0:
    raise UsageError(f'--max-pixels must be positive, got {args.max_pixels}')
  if not args.pairs:
    for path in args.images:  # Fail on a bad image before the (slow) model load.
      image_io.read_rgb(path, args.max_pixels)
  from lfw_siamese import inference  # pylint: disable=g-import-not-at-top  (JAX loads slowly)
  verifier = inference.load(args.workdir, threshold=args.threshold, batch_size=args.batch_size,
                            max_pixels=args.max_pixels,
                            framing=framing_flags.from_args(args))
  if verifier.threshold is None:
    raise UsageError(f'{os.path.join(args.workdir, "summary.json")}: no such file, so no '
                     'threshold chosen on validation yet (training writes it at the end); '
                     'pass --threshold')
  if args.pairs:
    _score_pairs_csv(verifier, args)
    return 0
  faces = [verifier.read_face(path) for path in args.images]
  result = {'image_a': args.images[0], 'image_b': args.images[1], **verifier.verify_faces(*faces)}
  if args.save_aligned:
    result['aligned_crops'] = [
        framing_flags.save_network_input(verifier.preprocess(face.crop), path,
                                         args.save_aligned)
        for face, path in zip(faces, args.images)]
  if args.figure:
    # pylint: disable-next=g-import-not-at-top  (matplotlib loads slowly)
    from lfw_siamese.evaluation import plots
    result['figure'] = plots.verified_pair(
        [image_io.read_rgb(p, args.max_pixels) for p in args.images], faces,
        [verifier.preprocess(face.crop) for face in faces], result, args.figure)
  if args.json:
    print(json.dumps(result))
    return 0
  for key in ('image_a', 'image_b'):
    print(f'{key}      {_describe(result["faces"][key])}')
  print(f'probability  {result["probability"]:.4f}')
  print(f'threshold    {result["threshold"]:.4f}')
  print(f'decision     {"same" if result["same"] else "different"}')
  for warning in result['warnings']:
    print(f'warning: {warning}', file=sys.stderr)
  return 0


def _describe(face: dict) -> str:
  """One line on how an image was framed."""
  if face['framing'] == 'as given':
    return 'taken as an aligned crop (--aligned)'
  if face['framing'] == 'center':
    return 'no face found: centre crop (--no-face=center)'
  width = face['box'][2] - face['box'][0]
  return (f'{face["faces_found"]} face{"s" if face["faces_found"] > 1 else ""} found, using '
          f'face {face["face_index"]} ({width:.0f} px wide, confidence {face["confidence"]:.3f})')


def main(argv: list[str] | None = None) -> int:
  try:
    return run(sys.argv[1:] if argv is None else argv)
  except (UsageError, image_io.ImageFileError, align.NoFaceError, FileNotFoundError, ValueError,
          lists.LfwDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main())
