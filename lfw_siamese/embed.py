"""Embeds a folder of face images: `python -m lfw_siamese.embed --workdir DIR FOLDER --output E.npz`

The .npz holds `paths` (str (N,), relative to FOLDER), `embeddings` (float32 (N, D), the encoder's
output as the pair head sees it), when the run used test-time flips `embeddings_flipped`, and when
the workdir has a fusion stage (fusion.py) `lbp_descriptors` (float32, each LBP descriptor's unit
vectors side by side).
"""

import argparse
import os
import sys

import numpy as np
import tqdm

from lfw_siamese import files
from lfw_siamese import framing_flags
from lfw_siamese.data import image_io
from lfw_siamese.data import lists
from lfw_siamese.detection import align


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m lfw_siamese.embed',
      description='Embed every image under a folder (recursively) with a trained workdir.')
  parser.add_argument('--workdir', required=True, help='a training workdir')
  parser.add_argument('folder', help='folder of images (searched recursively)')
  parser.add_argument('--output', required=True, metavar='EMB.npz')
  parser.add_argument('--skip-bad', action='store_true',
                      help='skip unreadable images (listed on stderr) instead of failing')
  parser.add_argument('--max-pixels', type=int, default=image_io.DEFAULT_MAX_PIXELS)
  parser.add_argument('--batch-size', type=int, default=64)
  framing_flags.add_flags(parser)
  return parser


def embed_folder(verifier, folder: str, *, skip_bad: bool = False,
                 save_aligned: str | None = None) -> dict[str, np.ndarray]:
  """{'paths', 'embeddings', face fields[, 'embeddings_flipped', 'lbp_descriptors']} of the
  folder's images; with `save_aligned`, the network's inputs are written there too."""
  paths, images, faces = [], [], []
  for path in tqdm.tqdm(image_io.find_images(folder), desc='reading and aligning', unit='image',
                        leave=False):
    try:
      face = verifier.read_face(path)
    except (image_io.ImageFileError, align.NoFaceError) as e:
      if not skip_bad:
        raise
      print(f'skipped: {e}', file=sys.stderr)
      continue
    for warning in face.warnings(path):
      print(f'warning: {warning}', file=sys.stderr)
    images.append(verifier.preprocess(face.crop))
    if save_aligned:
      framing_flags.save_network_input(images[-1], path, save_aligned)
    faces.append(face)
    paths.append(os.path.relpath(path, folder))
  if not paths:
    raise image_io.ImageFileError(folder, 'no readable image files in it '
                                  f'(extensions {", ".join(image_io.IMAGE_EXTENSIONS)})')
  batch = np.stack(images)
  result = {'paths': np.array(paths), 'embeddings': verifier.encode(batch),
            'faces_found': np.array([len(f.faces) for f in faces]),
            'face_boxes': np.array([f.face.box if f.face else [np.nan] * 4 for f in faces],
                                   np.float32),
            'face_landmarks': np.array([f.face.landmarks if f.face else np.full((5, 2), np.nan)
                                        for f in faces], np.float32),
            'face_confidence': np.array([f.face.confidence if f.face else np.nan
                                         for f in faces], np.float32)}
  if verifier.tta_flip:
    result['embeddings_flipped'] = verifier.encode(batch, flip=True)
  if verifier.fusion is not None:
    result['lbp_descriptors'] = verifier.fusion.embed(batch)
  return result


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  try:
    from lfw_siamese import inference  # pylint: disable=g-import-not-at-top  (JAX loads slowly)
    image_io.find_images(args.folder)  # A missing folder fails before the model loads.
    verifier = inference.load(args.workdir, batch_size=args.batch_size, max_pixels=args.max_pixels,
                              framing=framing_flags.from_args(args))
    result = embed_folder(verifier, args.folder, skip_bad=args.skip_bad,
                          save_aligned=args.save_aligned)
  except (image_io.ImageFileError, align.NoFaceError, FileNotFoundError, ValueError,
          lists.LfwDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  with files.atomic_write(args.output, 'wb') as f:
    np.savez(f, **result)
  print(f'{len(result["paths"])} images -> {args.output} (embeddings '
        f'{result["embeddings"].shape[1]}-d)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
