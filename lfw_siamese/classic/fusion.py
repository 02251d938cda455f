"""Score fusion: the CNN's probability and classic LBP descriptors' cosines (lbp.py), combined.

One LBP descriptor per cell grid (config.lbp_fusion.grids: fine cells see local texture, coarse
ones tolerate misalignment), and a metric learned on them (lbp_metric.py, when
config.lbp_fusion.metric.steps > 0). A logistic regression over the CNN's logit, each
descriptor's cosine and the metric's, fitted on the validation pairs, weighs each score by what
it adds and gives calibrated same-person probabilities. A pair whose descriptor cosines lie
outside the range the regression saw on validation pairs (a photo framed unlike LFW's crops, where
the descriptors match the background rather than the face) is scored by the network alone,
calibrated on the same pairs so that the fused threshold still applies. Training adds the stage when
config.lbp_fusion.enabled; `python -m lfw_siamese.refit_fusion --workdir DIR` adds it to a trained
workdir (DIR/lbp_fusion.npz), which inference.load then scores with.
"""

import dataclasses
import os
from typing import Callable

import numpy as np

from lfw_siamese import config_check
from lfw_siamese import files
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.classic import lbp as lbp_lib
from lfw_siamese.classic import lbp_metric
from lfw_siamese.evaluation import metrics

FILE = workdir_lib.FUSION_STAGE  # The stage, in a workdir.


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


def fallback_weights(cnn_logits: np.ndarray, labels: np.ndarray, fused_threshold: float):
  """(2,) a logistic regression on the CNN's logit alone, shifted so that the fused threshold
  falls where this regression's own best validation threshold does."""
  weights = fit(cnn_logits, labels)
  own_threshold = metrics.best_threshold(probabilities(weights, cnn_logits), labels)
  weights[-1] += logit(fused_threshold) - logit(own_threshold)
  return weights


def pair_features(cnn_probabilities: np.ndarray, lbp_cosines: np.ndarray) -> np.ndarray:
  """(N, 1 + K) fusion inputs: the CNN's logit and K LBP cosines (given as (N,) or (N, K))."""
  return np.column_stack([logit(cnn_probabilities), np.asarray(lbp_cosines, np.float64)])


def project(descriptors, features: list[np.ndarray]) -> np.ndarray:
  """Each descriptor's unit vectors of its grid's `mirrored_histograms`, side by side."""
  return np.concatenate([d.project(f) for d, f in zip(descriptors, features)], axis=1)


@dataclasses.dataclass(frozen=True)
class LbpFusion:
  """The LBP descriptors, their learned metric, and the weights that fuse their cosines with the
  CNN's probability."""
  descriptors: tuple[lbp_lib.LbpEmbedder, ...]
  # (K + 2,), or (K + 3,) with a metric: on the CNN's logit, on each descriptor's cosine, on the
  # metric's, bias.
  weights: np.ndarray
  metric: lbp_metric.LbpMetric | None = None
  # (2, K [+ 1]): the lowest and highest cosines of the validation pairs, column by column.
  cosine_range: np.ndarray | None = None
  # (2,): weight and bias on the CNN's logit alone, for pairs outside cosine_range.
  fallback: np.ndarray | None = None

  def __post_init__(self):
    if len({d.radii for d in self.descriptors}) != 1:
      raise ValueError('the descriptors must share their LBP radii')

  def embed(self, images: np.ndarray) -> np.ndarray:
    """float32 (N, total dims): each descriptor's unit vectors, side by side."""
    return project(self.descriptors, lbp_lib.mirrored_histograms(
        images, radii=self.descriptors[0].radii, grids=[d.grid for d in self.descriptors]))

  def cosines(self, lbp_a: np.ndarray, lbp_b: np.ndarray) -> np.ndarray:
    """(N, K) each descriptor's cosine between two sides' `embed` outputs, then the metric's."""
    ends = np.cumsum([d.projection.shape[1] for d in self.descriptors])
    products = np.asarray(lbp_a) * np.asarray(lbp_b)
    columns = [part.sum(axis=1) for part in np.split(products, ends[:-1], axis=1)]
    if self.metric is not None:
      columns.append(self.metric.cosines(lbp_a, lbp_b))
    return np.stack(columns, axis=1)

  def out_of_range(self, cosines: np.ndarray) -> np.ndarray:
    """(N,) True for pairs with a cosine outside the range seen on validation pairs."""
    if self.cosine_range is None:
      return np.zeros(len(cosines), bool)
    return ((cosines < self.cosine_range[0]) | (cosines > self.cosine_range[1])).any(axis=1)

  def score(self, cnn_probabilities: np.ndarray, lbp_a: np.ndarray, lbp_b: np.ndarray):
    """Fused probabilities (N,) from the CNN's and two sides' LBP embeddings (`embed`); the
    network's alone, calibrated, for pairs out of the fitted range."""
    return self.score_cosines(cnn_probabilities, self.cosines(lbp_a, lbp_b))

  def score_cosines(self, cnn_probabilities: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    """`score` from the CNN's probabilities and the pairs' `cosines`."""
    features = pair_features(cnn_probabilities, cosines)
    fused = probabilities(self.weights, features)
    outside = self.out_of_range(cosines)
    if outside.any():
      fused[outside] = probabilities(self.fallback, features[outside, :1])
    return fused

  def save(self, workdir: str) -> None:
    arrays = {'fusion_weights': self.weights}
    for i, descriptor in enumerate(self.descriptors):
      arrays.update({f'd{i}_{name}': array for name, array in descriptor.arrays().items()})
    if self.metric is not None:
      arrays.update(self.metric.arrays())
    if self.cosine_range is not None:
      arrays.update(cosine_range=self.cosine_range, fallback_weights=self.fallback)
    with files.atomic_write(os.path.join(workdir, FILE), 'wb') as f:
      np.savez(f, **arrays)


def load(workdir: str) -> LbpFusion | None:
  """The workdir's fusion stage, or None where it has none."""
  path = os.path.join(workdir, FILE)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as arrays:
      if 'lbp_radii' in arrays:  # Written before there could be several descriptors.
        descriptors = [lbp_lib.LbpEmbedder.from_arrays(arrays)]
      else:
        count = sum(1 for name in arrays.files if name.endswith('_lbp_radii'))
        descriptors = [lbp_lib.LbpEmbedder.from_arrays(
            {name: arrays[f'd{i}_{name}'] for name in ('lbp_radii', 'lbp_grid', 'lbp_mean',
                                                       'lbp_projection')}) for i in range(count)]
      weights = np.asarray(arrays['fusion_weights'])
      metric = (lbp_metric.LbpMetric.from_arrays(arrays) if 'metric_mean' in arrays.files
                else None)
      # Stages fitted before the range was kept fuse every pair.
      cosine_range, fallback = ((np.asarray(arrays['cosine_range']),
                                 np.asarray(arrays['fallback_weights']))
                                if 'cosine_range' in arrays.files else (None, None))
    if not descriptors or weights.shape != (len(descriptors) + 2 + (metric is not None),):
      raise ValueError(f'{len(descriptors)} descriptors{" and a metric" if metric else ""} and '
                       f'weights of shape {weights.shape}')
    return LbpFusion(tuple(descriptors), weights, metric, cosine_range, fallback)
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f'{path}: not a fusion stage this version reads ({e}); rebuild it with '
                     f'python -m lfw_siamese.refit_fusion --workdir {workdir}') from None


def fit_lbp_fusion(settings, data, validation_cnn: np.ndarray, test_cnn: np.ndarray, *,
                   figure: str | None = None,
                   announce: Callable[[str], None] = lambda stage: None
                   ) -> tuple[LbpFusion, dict, np.ndarray]:
  """Learns the LBP descriptors from the training people and the fusion on the validation pairs.

  Args:
    settings: config.lbp_fusion (radii, grids, dims).
    data: datasets.TrainingData of the unrestricted paradigm (train is an IdentitySet).
    validation_cnn: (N,) the CNN's probabilities of data.validation's pairs.
    test_cnn: (M,) the CNN's probabilities of data.test's pairs.
    figure: where to draw the test pairs' CNN and LBP scores and the fused threshold, if given.
    announce: called with the name of each step as it starts (they take minutes on real LFW).

  Returns:
    The stage; the verification report of the fused scores, with the CNN's own under cnn_only_
    keys, the LBP descriptors' (fused without the CNN) under lbp_only_ keys, and the fusion
    weights; and the fused test probabilities.
  """
  radii, grids = tuple(settings.radii), tuple(settings.grids)
  announce(f'fusion stage: LBP histograms of {len(data.train.images)} training images')
  train_features = lbp_lib.mirrored_histograms(data.train.images, radii=radii, grids=grids)
  announce(f'fusion stage: {len(grids)} LBP descriptors (PCA to {settings.dims}, whitening)')
  descriptors = lbp_lib.fit_features(train_features, data.train.person_ids, radii=radii,
                                     grids=grids, dims=int(settings.dims))
  metric = None
  if (metric_config := config_check.lbp_metric_settings(settings)).steps:
    announce(f'fusion stage: a metric on the descriptors, {metric_config.steps} steps')
    metric = lbp_metric.fit(project(descriptors, train_features), data.train.person_ids,
                            metric_config)
  unfitted = LbpFusion(descriptors, np.zeros(len(descriptors) + 2 + (metric is not None)), metric)
  announce(f'fusion stage: weights on {len(data.validation)} validation pairs, scoring '
           f'{len(data.test)} test pairs')
  validation_cosines, test_cosines = (
      unfitted.cosines(unfitted.embed(pairs.images[:, 0]), unfitted.embed(pairs.images[:, 1]))
      for pairs in (data.validation, data.test))
  validation_features = pair_features(validation_cnn, validation_cosines)
  test_features = pair_features(test_cnn, test_cosines)
  labels = data.validation.labels
  weights = fit(validation_features, labels)
  validation = probabilities(weights, validation_features)
  stage = dataclasses.replace(
      unfitted, weights=weights,
      cosine_range=np.stack([validation_cosines.min(axis=0), validation_cosines.max(axis=0)]),
      fallback=fallback_weights(validation_features[:, :1], labels,
                                metrics.best_threshold(validation, labels)))
  test = stage.score_cosines(test_cnn, test_cosines)
  report = metrics.verification_report(validation, labels, test, data.test.labels)
  report['test_out_of_range'] = float(stage.out_of_range(test_cosines).mean())
  lbp_weights = fit(validation_cosines, labels)
  for name, (validation_alone, test_alone) in (
      ('cnn_only', (validation_cnn, test_cnn)),
      ('lbp_only', (probabilities(lbp_weights, validation_cosines),
                    probabilities(lbp_weights, test_cosines)))):
    alone = metrics.verification_report(validation_alone, labels, test_alone, data.test.labels)
    report.update({f'{name}_{key}': value for key, value in alone.items()})
  report.update(fusion_weight_cnn_logit=float(stage.weights[0]),
                fusion_bias=float(stage.weights[-1]),
                **{f'fusion_weight_lbp_grid{grid}': float(weight)
                   for grid, weight in zip(settings.grids, stage.weights[1:-1])})
  if metric is not None:
    report['fusion_weight_lbp_metric'] = float(stage.weights[-2])
  if figure:
    # pylint: disable-next=g-import-not-at-top  (matplotlib loads slowly)
    from lfw_siamese.evaluation import plots
    plots.fusion_scatter(test_features[:, 0], test_cosines @ stage.weights[1:-1],
                         data.test.labels, stage.weights[0], stage.weights[-1],
                         report['threshold'], figure,
                         title=f"test pairs: fused accuracy {report['test_acc']:.3f} (network "
                               f"{report['cnn_only_test_acc']:.3f}, "
                               f"LBP {report['lbp_only_test_acc']:.3f})")
  return stage, {name: float(value) for name, value in report.items()}, test


