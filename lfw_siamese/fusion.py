"""Score fusion: the CNN's probability and a classic LBP descriptor's cosine (lbp.py), combined.

A logistic regression over the two scores, fitted on the validation pairs, weighs each by what it
adds and gives calibrated same-person probabilities. Training adds the stage when
config.lbp_fusion.enabled; `python -m lfw_siamese.fusion --workdir DIR` adds it to a trained
workdir (DIR/lbp_fusion.npz), which inference.load then scores with.
"""

import argparse
import dataclasses
import json
import os
import sys

import ml_collections
import numpy as np

from lfw_siamese import lbp as lbp_lib
from lfw_siamese import lists
from lfw_siamese import metrics
from lfw_siamese.configs import base

FILE = 'lbp_fusion.npz'  # The stage, in a workdir.


def logit(probabilities: np.ndarray) -> np.ndarray:
  """log(p / (1 - p)), with p clipped away from 0 and 1."""
  p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
  return np.log(p / (1 - p))


def fit(scores: np.ndarray, labels: np.ndarray, *, ridge: float = 1e-3,
        iterations: int = 50) -> np.ndarray:
  """Weights (F + 1,), bias last, of a logistic regression of labels (N,) on scores (N, F).

  Newton's method on the mean log loss plus ridge * |weights|^2 (the bias unpenalised), on scores
  standardised first so that the ridge treats each alike, whatever its scale.
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels, np.float64)
  if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
    raise ValueError(f'expected scores (N, F) and labels (N,), got {scores.shape} and '
                     f'{labels.shape}')
  if labels.min() == labels.max():
    raise ValueError('fusion needs both same and different pairs to fit on')
  mean, scale = scores.mean(axis=0), np.maximum(scores.std(axis=0), 1e-12)
  inputs = np.concatenate([(scores - mean) / scale, np.ones((scores.shape[0], 1))], axis=1)
  penalty = np.full(inputs.shape[1], 2 * ridge)
  penalty[-1] = 0.0
  weights = np.zeros(inputs.shape[1])
  for _ in range(iterations):
    p = 1 / (1 + np.exp(-inputs @ weights))
    gradient = inputs.T @ (p - labels) / labels.size + penalty * weights
    hessian = (inputs.T * (p * (1 - p))) @ inputs / labels.size + np.diag(penalty + 1e-9)
    step = np.linalg.solve(hessian, gradient)
    weights -= step
    if np.abs(step).max() < 1e-10:
      break
  raw = weights[:-1] / scale  # Back to the scores' own scale.
  return np.append(raw, weights[-1] - raw @ mean)


def probabilities(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """float32 (N,) same-person probabilities of scores (N, F) under fitted weights."""
  scores = np.asarray(scores, np.float64)
  return (1 / (1 + np.exp(-(scores @ weights[:-1] + weights[-1])))).astype(np.float32)


def pair_features(cnn_probabilities: np.ndarray, lbp_cosines: np.ndarray) -> np.ndarray:
  """(N, 2) fusion inputs: the CNN's logit and the LBP descriptors' cosine."""
  return np.stack([logit(cnn_probabilities), np.asarray(lbp_cosines, np.float64)], axis=1)


@dataclasses.dataclass(frozen=True)
class LbpFusion:
  """The LBP descriptor and the weights that fuse its cosine with the CNN's probability."""
  lbp: lbp_lib.LbpEmbedder
  weights: np.ndarray  # (3,): on the CNN's logit, on the LBP cosine, bias.

  def score(self, cnn_probabilities: np.ndarray, lbp_a: np.ndarray, lbp_b: np.ndarray):
    """Fused probabilities (N,) from the CNN's and two sides' LBP embeddings (`lbp.embed`)."""
    return probabilities(self.weights,
                         pair_features(cnn_probabilities, np.sum(lbp_a * lbp_b, axis=1)))

  def save(self, workdir: str) -> None:
    path = os.path.join(workdir, FILE)
    with open(path + '.tmp', 'wb') as f:
      np.savez(f, fusion_weights=self.weights, **self.lbp.arrays())
    os.replace(path + '.tmp', path)


def load(workdir: str) -> LbpFusion | None:
  """The workdir's fusion stage, or None where it has none."""
  path = os.path.join(workdir, FILE)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as arrays:
      return LbpFusion(lbp_lib.LbpEmbedder.from_arrays(arrays),
                       np.asarray(arrays['fusion_weights']))
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f'{path}: not a fusion stage this version reads ({e}); rebuild it with '
                     f'python -m lfw_siamese.fusion --workdir {workdir}') from None


def check_settings(settings, image_size: int) -> None:
  """Raises ValueError naming the first lbp_fusion field the descriptor cannot use."""
  radii, grid, dims = settings.radii, settings.grid, settings.dims
  is_int = lambda value: isinstance(value, int) and not isinstance(value, bool)
  if not radii or not all(is_int(r) and 1 <= r <= image_size // 4 for r in radii):
    raise ValueError(f'lbp_fusion.radii: expected integers from 1 to {image_size // 4} (a quarter '
                     f'of the {image_size}-pixel images), got {radii!r}')
  if not is_int(grid) or not 1 <= grid <= image_size // 2:
    raise ValueError(f'lbp_fusion.grid: expected an integer from 1 to {image_size // 2}, '
                     f'got {grid!r}')
  if not is_int(dims) or dims < 2:
    raise ValueError(f'lbp_fusion.dims: expected an integer of 2 or more, got {dims!r}')


def fit_lbp_fusion(settings, data, validation_cnn: np.ndarray, test_cnn: np.ndarray, *,
                   figure: str | None = None) -> tuple[LbpFusion, dict, np.ndarray]:
  """Learns the LBP descriptor from the training people and the fusion on the validation pairs.

  Args:
    settings: config.lbp_fusion (radii, grid, dims).
    data: input_pipeline.TrainingData of the unrestricted paradigm (train is an IdentitySet).
    validation_cnn: (N,) the CNN's probabilities of data.validation's pairs.
    test_cnn: (M,) the CNN's probabilities of data.test's pairs.
    figure: where to draw the test pairs' two scores and the fused threshold (plots.py), if given.

  Returns:
    The stage; the verification report of the fused scores, with the CNN's and the LBP cosine's
    own under cnn_only_ and lbp_only_ keys and the fusion weights; and the fused test
    probabilities.
  """
  descriptor = lbp_lib.fit(data.train.images, data.train.person_ids,
                           radii=tuple(settings.radii), grid=int(settings.grid),
                           dims=int(settings.dims))
  cosine = lambda pairs: np.sum(descriptor.embed(pairs.images[:, 0])
                                * descriptor.embed(pairs.images[:, 1]), axis=1)
  validation_features = pair_features(validation_cnn, cosine(data.validation))
  test_features = pair_features(test_cnn, cosine(data.test))
  stage = LbpFusion(descriptor, fit(validation_features, data.validation.labels))
  validation = probabilities(stage.weights, validation_features)
  test = probabilities(stage.weights, test_features)
  report = metrics.verification_report(validation, data.validation.labels, test, data.test.labels)
  for name, (validation_alone, test_alone) in (('cnn_only', (validation_cnn, test_cnn)),
                                               ('lbp_only', (validation_features[:, 1],
                                                             test_features[:, 1]))):
    alone = metrics.verification_report(validation_alone, data.validation.labels, test_alone,
                                        data.test.labels)
    report.update({f'{name}_{key}': value for key, value in alone.items()})
  report.update(fusion_weight_cnn_logit=float(stage.weights[0]),
                fusion_weight_lbp_cosine=float(stage.weights[1]),
                fusion_bias=float(stage.weights[2]))
  if figure:
    from lfw_siamese import plots  # pylint: disable=g-import-not-at-top  (matplotlib loads slowly)
    plots.fusion_scatter(test_features[:, 0], test_features[:, 1], data.test.labels, stage.weights,
                         report['threshold'], figure,
                         title=f"test pairs: fused accuracy {report['test_acc']:.3f} (network "
                               f"{report['cnn_only_test_acc']:.3f}, "
                               f"LBP {report['lbp_only_test_acc']:.3f})")
  return stage, {name: float(value) for name, value in report.items()}, test


def add_to_workdir(workdir: str, settings, *, lfw_dir: str | None = None,
                   batch_size: int = 64) -> dict:
  """Adds (or refits) the fusion stage of a trained workdir; updates summary.json and report.md."""
  from lfw_siamese import checkpointing  # pylint: disable=g-import-not-at-top  (JAX loads slowly)
  from lfw_siamese import inference  # pylint: disable=g-import-not-at-top
  from lfw_siamese import input_pipeline  # pylint: disable=g-import-not-at-top
  from lfw_siamese import report  # pylint: disable=g-import-not-at-top
  summary_path = os.path.join(workdir, 'summary.json')
  if not os.path.exists(summary_path):
    raise FileNotFoundError(f'{summary_path}: no such file; the fusion stage follows a finished '
                            'training')
  verifier = inference.load(workdir, batch_size=batch_size, with_fusion=False)
  check_settings(settings, verifier.image_shape[0])
  if verifier.config.data.paradigm != 'unrestricted':
    raise ValueError(f'{workdir}: trained in the {verifier.config.data.paradigm} paradigm; the LBP '
                     'descriptor is learned from identities (unrestricted paradigm only)')
  if lfw_dir:
    with verifier.config.unlocked():
      verifier.config.data.lfw_dir = lfw_dir
  data = input_pipeline.training_data(verifier.config)
  stage, fused, test = fit_lbp_fusion(settings, data, verifier.score_pairs(data.validation),
                                      verifier.score_pairs(data.test),
                                      figure=report.figure_path(workdir, report.FUSION))
  with open(summary_path) as f:
    summary = json.load(f)
  fused.pop('val_acc')  # As training's summary: val_acc stays the best epoch's, at 0.5.
  summary.update(fused)
  summary['config']['lbp_fusion'] = settings.to_dict()
  stage.save(workdir)
  checkpointing.write_json(summary_path, summary)
  report.write_training_report(workdir, summary, data.test, test)
  return summary


def _parser() -> argparse.ArgumentParser:
  defaults = base.get_config().lbp_fusion
  parser = argparse.ArgumentParser(
      prog='python -m lfw_siamese.fusion',
      description='Adds the LBP fusion stage to trained workdirs (unrestricted paradigm): learns '
                  'the descriptor from the training people and the fusion on the validation '
                  'pairs, then rescores the test pairs (summary.json keeps the CNN\'s own '
                  'numbers under cnn_only_ keys).')
  parser.add_argument('--workdir', action='append', required=True,
                      help='a trained workdir (repeat for several, e.g. View 2 folds)')
  parser.add_argument('--radii', default=','.join(map(str, defaults.radii)),
                      help='LBP circle radii in pixels, comma-separated')
  parser.add_argument('--grid', type=int, default=defaults.grid, help='cells per side')
  parser.add_argument('--dims', type=int, default=defaults.dims,
                      help='PCA dimensions before whitening')
  parser.add_argument('--lfw-dir', default=None, help='overrides the LFW location in the config')
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  settings = ml_collections.ConfigDict({'enabled': True, 'grid': args.grid, 'dims': args.dims})
  try:
    settings.radii = tuple(int(r) for r in args.radii.split(','))
  except ValueError:
    print(f'--radii: expected comma-separated integers, got {args.radii!r}', file=sys.stderr)
    return 2
  for workdir in args.workdir:
    try:
      summary = add_to_workdir(workdir, settings, lfw_dir=args.lfw_dir)
    except (FileNotFoundError, ValueError, lists.LfwDataError) as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    print(f"{workdir}: test accuracy {summary['test_acc']:.4f} (CNN alone "
          f"{summary['cnn_only_test_acc']:.4f}), AUC {summary['test_auc']:.4f} (CNN alone "
          f"{summary['cnn_only_test_auc']:.4f})")
  return 0


if __name__ == '__main__':
  sys.exit(main())
