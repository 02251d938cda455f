"""Would fitting the fusion and its threshold on more pairs of the held-out people help on test?

  LFW_DIR=/work/shared/lfw python experiments/validation_pairs.py runs/default [runs/v2/fold_0 ...]

For each workdir with a fusion stage, draws pair sets of several sizes among the people training
held out for validation (the validation pairs' rule and seed; size 0 is the validation pairs
themselves, so it reproduces the run's own fit), refits the fusion weights and the threshold on
each, and scores the test pairs. The network, the descriptors and the metric stay as trained.
Each image is embedded once, so a size costs only its pairs' scoring.
"""

import argparse

import numpy as np

from lfw_siamese import fusion
from lfw_siamese import inference
from lfw_siamese import input_pipeline
from lfw_siamese import metrics

SIZES = (0, 2000, 5000, 10000)


def pair_features(verifier, embedded_a, embedded_b) -> np.ndarray:
  """The fusion's inputs (N, F) for aligned `embed_for_scoring` outputs."""
  return fusion.pair_features(verifier.score_embedded_cnn(embedded_a['cnn'], embedded_b['cnn']),
                              verifier.fusion.cosines(embedded_a['lbp'], embedded_b['lbp']))


def size_results(workdir: str, sizes) -> list[dict]:
  """One result per size: pairs, threshold, test accuracy at it and at 0.5, test AUC and log loss."""
  verifier = inference.load(workdir)
  if verifier.fusion is None:
    raise SystemExit(f'{workdir}: no fusion stage ({fusion.FILE})')
  config = verifier.config
  data = input_pipeline.training_data(config)
  _, people = input_pipeline.unrestricted_people(config)
  people_embedded = verifier.embed_for_scoring(people.images)
  test_features = pair_features(verifier, verifier.embed_for_scoring(data.test.images[:, 0]),
                                verifier.embed_for_scoring(data.test.images[:, 1]))
  results = []
  for size in sizes:
    rows, labels = input_pipeline.identity_pair_rows(
        people.person_ids, size or len(data.validation), seed=config.seed, epoch=0)
    features = pair_features(verifier, verifier.take(people_embedded, rows[:, 0]),
                             verifier.take(people_embedded, rows[:, 1]))
    weights = fusion.fit(features, labels)
    threshold = metrics.best_threshold(fusion.probabilities(weights, features), labels)
    scores = fusion.probabilities(weights, test_features)
    results.append({'pairs': len(labels), 'threshold': threshold,
                    'test_acc': metrics.accuracy(scores, data.test.labels, threshold),
                    'test_acc_at_0_5': metrics.accuracy(scores, data.test.labels, 0.5),
                    'test_auc': metrics.roc_auc(scores, data.test.labels),
                    'test_log_loss': metrics.log_loss(scores, data.test.labels)})
  return results


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', help='trained workdirs with a fusion stage')
  parser.add_argument('--sizes', default=','.join(map(str, SIZES)),
                      help='pair counts, comma-separated (0: the validation pairs)')
  args = parser.parse_args(argv)
  sizes = [int(size) for size in args.sizes.split(',')]
  means = np.zeros((len(sizes), 4))
  print('| workdir | pairs | threshold | test acc | test acc at 0.5 | test AUC | test log loss |')
  print('|---|---|---|---|---|---|---|')
  for workdir in args.workdirs:
    for i, row in enumerate(size_results(workdir, sizes)):
      means[i] += [row['test_acc'], row['test_acc_at_0_5'], row['test_auc'], row['test_log_loss']]
      print(f"| {workdir} | {row['pairs']} | {row['threshold']:.3f} | {row['test_acc']:.4f} | "
            f"{row['test_acc_at_0_5']:.4f} | {row['test_auc']:.4f} | {row['test_log_loss']:.4f} |",
            flush=True)
  for size, (acc, acc_half, auc, loss) in zip(sizes, means / len(args.workdirs)):
    print(f"| mean over the workdirs | {size or 'validation'} | | {acc:.4f} | {acc_half:.4f} | "
          f'{auc:.4f} | {loss:.4f} |')


if __name__ == '__main__':
  main()
