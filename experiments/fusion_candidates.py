"""Which scores add to a trained network's fusion: each candidate scored on validation.

  LFW_DIR=path/to/lfw python experiments/fusion_candidates.py --workdir runs/default \
      [--only lbp6 hog6 ...] [--networks runs/other ...] [--wide-crop 200 --wide-size 80] \
      [--output candidates.md]

For a workdir trained in the unrestricted paradigm, learns each candidate descriptor from its
training people (as classic/fusion.py learns the LBP ones: mirror-averaged features, PCA to 800
dimensions, within-class whitening, cosine scores) and fits a logistic regression of the
validation pairs on the network's logit, the 10x10-grid LBP cosine (the first stage's only score)
and one or two candidates. Candidates are ranked by the fused score's validation AUC under 10-fold
cross-validation over the validation pairs (out-of-fold probabilities, so that more inputs gain
nothing by fitting noise); the test columns are printed beside them, never used to choose.
Candidates: LBP on 6x6 and 14x14 grids, HOG (8- and 6-pixel cells), LBP and HOG on a wider crop
(data.crop and data.image_size set to --wide-crop and --wide-size), LBP on a 6x6 grid of the same
crop at 128 pixels (radii 2, 4, 6), the network's own embeddings whitened the same way
(`net_wccn`, 64 dimensions), and the logits of other networks trained on the same people
(--networks: e.g. another crop or architecture).
"""

import argparse
import itertools
import os

import numpy as np

from lfw_siamese import inference
from lfw_siamese.classic import fusion
from lfw_siamese.classic import lbp
from lfw_siamese.data import loading
from lfw_siamese.evaluation import metrics

DIMS = 800


def hog(images: np.ndarray, cell: int, bins: int = 9) -> np.ndarray:
  """Square-root HOG: unsigned gradient orientations in cells, L2-Hys over 2x2-cell blocks."""
  gray = images.astype(np.float32).mean(axis=-1) / 255
  gy, gx = np.zeros_like(gray), np.zeros_like(gray)
  gy[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
  gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
  magnitude = np.hypot(gx, gy)
  position = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins  # Votes split between two bins.
  low = np.floor(position).astype(np.int64) % bins
  share = position - np.floor(position)
  count, height, width = gray.shape
  rows, columns = height // cell, width // cell
  cells = (np.minimum(np.arange(height) // cell, rows - 1)[:, None] * columns
           + np.minimum(np.arange(width) // cell, columns - 1)[None, :])
  base = (np.arange(count)[:, None, None] * rows * columns + cells) * bins
  histogram = np.zeros(count * rows * columns * bins)
  np.add.at(histogram, (base + low).ravel(), (magnitude * (1 - share)).ravel())
  np.add.at(histogram, (base + (low + 1) % bins).ravel(), (magnitude * share).ravel())
  grid = histogram.reshape(count, rows, columns, bins)
  blocks = np.concatenate([grid[:, :-1, :-1], grid[:, 1:, :-1], grid[:, :-1, 1:], grid[:, 1:, 1:]],
                          axis=-1)
  normalise = lambda b: b / np.sqrt((b ** 2).sum(axis=-1, keepdims=True) + 1e-6)
  blocks = normalise(np.minimum(normalise(blocks), 0.2))
  return np.sqrt(blocks.reshape(count, -1)).astype(np.float32)


def mirrored(featurize):
  """The mean of a featurizer's output on the images and on their mirror images."""
  return lambda images: (featurize(images) + featurize(images[:, :, ::-1])) / 2


def cosines(featurize, data, dims: int = DIMS) -> tuple[np.ndarray, np.ndarray]:
  """Validation and test pairs' cosines under the descriptor learned from data.train."""
  mean, projection = lbp.whitening(featurize(data.train.images), data.train.person_ids, dims)

  def embed(images):
    projected = (featurize(images) - mean) @ projection
    return projected / np.linalg.norm(projected, axis=1, keepdims=True)

  return tuple(np.sum(embed(pairs.images[:, 0]) * embed(pairs.images[:, 1]), axis=1)
               for pairs in (data.validation, data.test))


def cross_validated_auc(features: np.ndarray, labels: np.ndarray, folds: int = 10) -> float:
  """AUC of out-of-fold fused probabilities over the validation pairs."""
  order = np.random.default_rng(0).permutation(len(labels))
  probabilities = np.zeros(len(labels))
  for part in np.array_split(order, folds):
    rest = np.setdiff1d(order, part)
    weights = fusion.fit(features[rest], labels[rest])
    probabilities[part] = fusion.probabilities(weights, features[part])
  return metrics.roc_auc(probabilities, labels)


def fused_report(validation: np.ndarray, test: np.ndarray, labels) -> tuple[float, dict]:
  """The fused score's cross-validated validation AUC, and the report of the fusion fitted on
  every validation pair (test columns beside)."""
  weights = fusion.fit(validation, labels[0])
  report = metrics.verification_report(fusion.probabilities(weights, validation), labels[0],
                                       fusion.probabilities(weights, test), labels[1])
  return cross_validated_auc(validation, labels[0]), report


def write_table(lines: list[str], output: str | None) -> None:
  """Prints a markdown table, and writes it to output when given."""
  table = '\n'.join(lines)
  print(table)
  if output:
    with open(output, 'w') as f:
      f.write(table + '\n')


def network_cosines(verifier, data, dims: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """Validation and test cosines of the network's flip-averaged embeddings, whitened like LBP."""
  embed = lambda images: verifier.encode(images) + verifier.encode(images, flip=True)
  return cosines(embed, data, dims)


def other_network_logits(workdir: str, data) -> tuple[np.ndarray, np.ndarray]:
  """Another trained network's logits on the same validation and test pairs."""
  other = inference.load(workdir, with_fusion=False)
  other_data = loading.training_data(other.config)
  for name in ('validation', 'test'):
    if not np.array_equal(getattr(other_data, name).names, getattr(data, name).names):
      raise SystemExit(f'{workdir}: its {name} pairs differ from --workdir\'s (protocol, fold, '
                       'seed and validation_fraction must match)')
  return tuple(fusion.logit(other.score_pairs(pairs))
               for pairs in (other_data.validation, other_data.test))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='a trained unrestricted workdir')
  parser.add_argument('--only', nargs='*', default=None, help='these candidates (default: all)')
  parser.add_argument('--networks', nargs='*', default=[],
                      help='other trained workdirs whose logits are candidates too')
  parser.add_argument('--wide-crop', type=int, default=200)
  parser.add_argument('--wide-size', type=int, default=80)
  parser.add_argument('--output', default=None, help='also write the table here (markdown)')
  args = parser.parse_args(argv)

  verifier = inference.load(args.workdir, with_fusion=False)
  data = loading.training_data(verifier.config)

  def resized(crop, size):
    """The same training data preprocessed at another crop and size."""
    config = verifier.config.copy_and_resolve_references()
    with config.unlocked():
      config.data.crop, config.data.image_size = crop, size
    return lambda: loading.training_data(config)

  wide = resized(args.wide_crop, args.wide_size)
  network = [fusion.logit(verifier.score_pairs(pairs)) for pairs in (data.validation, data.test)]
  lbp_grid = lambda grid, radii=(1, 2, 3): mirrored(
      lambda images: lbp.histograms(images, radii=radii, grids=(grid,))[0])
  scores = {'lbp10': cosines(lbp_grid(10), data)}
  candidates = {  # name -> a function of nothing giving (validation, test) scores.
      'lbp6': lambda: cosines(lbp_grid(6), data),
      'lbp14': lambda: cosines(lbp_grid(14, (1, 2)), data),
      'hog8': lambda: cosines(mirrored(lambda images: hog(images, 8)), data),
      'hog6': lambda: cosines(mirrored(lambda images: hog(images, 6)), data),
      f'lbp10_crop{args.wide_crop}': lambda: cosines(lbp_grid(10), wide()),
      f'hog8_crop{args.wide_crop}': lambda: cosines(mirrored(lambda images: hog(images, 8)),
                                                    wide()),
      'lbp6_128px': lambda: cosines(lbp_grid(6, (2, 4, 6)),
                                    resized(verifier.config.data.crop, 128)()),
      'net_wccn': lambda: network_cosines(verifier, data),
  }
  unknown = set(args.only or ()) - set(candidates)
  if unknown:
    parser.error(f"--only: no candidate {', '.join(sorted(unknown))} (there are: "
                 f"{', '.join(candidates)})")
  candidates = {name: score for name, score in candidates.items()
                if args.only is None or name in args.only}
  for workdir in args.networks:  # Always candidates.
    candidates[f'net_{os.path.basename(os.path.normpath(workdir))}'] = (
        lambda workdir=workdir: other_network_logits(workdir, data))
  names = list(candidates)
  for name in names:
    print(f'learning {name}', flush=True)
    scores[name] = candidates[name]()

  labels = data.validation.labels, data.test.labels
  lines = ['| fused scores | validation AUC (10-fold CV) | validation acc | test acc | test AUC |',
           '|---|---|---|---|---|']
  for extra in [()] + [(n,) for n in names] + list(itertools.combinations(names, 2)):
    columns = ('lbp10',) + extra
    validation, test = (np.column_stack([network[i]] + [scores[n][i] for n in columns])
                        for i in (0, 1))
    auc, report = fused_report(validation, test, labels)
    lines.append(f"| network + {' + '.join(columns)} | {auc:.4f} | {report['val_acc']:.3f} | "
                 f"{report['test_acc']:.3f} | {report['test_auc']:.4f} |")
  for name in ['lbp10'] + names:
    lines.append(f'| {name} alone | {metrics.roc_auc(scores[name][0], labels[0]):.4f} (no fit) | '
                 f'| | {metrics.roc_auc(scores[name][1], labels[1]):.4f} |')
  write_table(lines, args.output)


if __name__ == '__main__':
  main()
