"""Which decision rule for the fused score holds up on unseen pairs, judged on validation pairs only.

  LFW_DIR=/work/shared/lfw python experiments/threshold_rules.py runs/default [runs/v2/fold_0 ...]

For each workdir with a fusion stage, splits its validation pairs into 10 folds (5 seeded
repeats): the fusion is fitted on nine, and the held-out fold is decided either at the threshold
that maximises accuracy on the nine (the protocol's rule, as training applies it) or at the
fitted logistic's own 0.5. Prints each rule's out-of-fold accuracy; test pairs are never read.
"""

import argparse

import numpy as np

from lfw_siamese import fusion
from lfw_siamese import inference
from lfw_siamese import input_pipeline
from lfw_siamese import metrics


def validation_features(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """The fusion's inputs (N, F) for the workdir's validation pairs, and their labels (N,)."""
  verifier = inference.load(workdir, with_fusion=False)
  stage = fusion.load(workdir)
  if stage is None:
    raise SystemExit(f'{workdir}: no fusion stage ({fusion.FILE})')
  pairs = input_pipeline.training_data(verifier.config).validation
  cosines = stage.cosines(stage.embed(pairs.images[:, 0]), stage.embed(pairs.images[:, 1]))
  return fusion.pair_features(verifier.score_pairs(pairs), cosines), pairs.labels


def out_of_fold_accuracies(features, labels, *, folds: int = 10,
                           repeats: int = 5) -> tuple[float, float]:
  """Mean out-of-fold accuracy at the best threshold of the other folds, and at 0.5."""
  correct = np.zeros(2)
  for repeat in range(repeats):
    order = np.random.default_rng(repeat).permutation(len(labels))
    for part in np.array_split(order, folds):
      rest = np.setdiff1d(order, part)
      weights = fusion.fit(features[rest], labels[rest])
      threshold = metrics.best_threshold(fusion.probabilities(weights, features[rest]),
                                         labels[rest])
      held_out = fusion.probabilities(weights, features[part])
      same = labels[part] == 1
      correct += [np.sum((held_out >= threshold) == same), np.sum((held_out >= 0.5) == same)]
  return tuple(correct / (repeats * len(labels)))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', help='trained workdirs with a fusion stage')
  args = parser.parse_args(argv)
  print('| workdir | validation pairs | best threshold of the other folds | 0.5 |')
  print('|---|---|---|---|')
  for workdir in args.workdirs:
    features, labels = validation_features(workdir)
    best, half = out_of_fold_accuracies(features, labels)
    print(f'| {workdir} | {len(labels)} | {best:.4f} | {half:.4f} |', flush=True)


if __name__ == '__main__':
  main()
