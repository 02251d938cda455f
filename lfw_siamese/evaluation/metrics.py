"""Verification metrics in numpy: threshold, accuracy, ROC, AUC, EER, TAR@FAR, folds, one-shot.

Scores are "higher = more likely the same person"; labels are 1 (same) or 0 (different). A pair is
predicted "same" when its score is >= the threshold. Tied scores always fall on the same side.
"""

import math
from typing import Sequence

import numpy as np


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  """Validates and converts scores and labels to 1-D float64 / int arrays of equal length."""
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if scores.shape != labels.shape:
    raise ValueError(f'scores and labels differ in length: {scores.size} vs {labels.size}')
  if scores.size == 0:
    raise ValueError('scores and labels are empty')
  if not np.all(np.isfinite(scores)):
    raise ValueError('scores contain NaN or infinity')
  if not np.all((labels == 0) | (labels == 1)):
    raise ValueError(f'labels must be 0 or 1, got {sorted(set(labels.tolist()))}')
  return scores, labels.astype(np.int64)


def _counts_above(scores: np.ndarray, labels: np.ndarray):
  """Distinct scores (ascending) and, for each, positives/negatives scoring strictly above it."""
  distinct, inverse = np.unique(scores, return_inverse=True)
  positives_at = np.bincount(inverse, weights=labels, minlength=distinct.size)
  negatives_at = np.bincount(inverse, weights=1 - labels, minlength=distinct.size)
  positives_above = labels.sum() - np.cumsum(positives_at)
  negatives_above = (1 - labels).sum() - np.cumsum(negatives_at)
  return distinct, positives_above, negatives_above


def best_threshold(scores, labels) -> float:
  """The threshold that maximises accuracy: a midpoint between neighbouring distinct scores.

  Candidates are every midpoint, plus the lowest score (all predicted same) and the next float
  above the highest (all predicted different), which win only when strictly better than any
  midpoint. Among equally accurate candidates the lowest wins.
  """
  scores, labels = _as_arrays(scores, labels)
  distinct, positives_above, negatives_above = _counts_above(scores, labels)
  negatives = (1 - labels).sum()
  # Threshold just above distinct[i]: true positives = positives above it, true negatives = rest.
  correct_above = positives_above + (negatives - negatives_above)
  midpoints = (distinct[:-1] + distinct[1:]) / 2
  candidates = correct_above[:-1]  # One per midpoint.
  all_same, all_different = labels.sum(), negatives
  best_midpoint = candidates.max() if candidates.size else -1
  if max(all_same, all_different) > best_midpoint:
    if all_same >= all_different:
      return float(distinct[0])
    return float(np.nextafter(distinct[-1], np.inf))
  return float(midpoints[int(np.argmax(candidates))])


def accuracy(scores, labels, threshold: float) -> float:
  """Fraction of pairs classified correctly when "same" means score >= threshold."""
  scores, labels = _as_arrays(scores, labels)
  return float(np.mean((scores >= threshold) == (labels == 1)))


def log_loss(probabilities, labels) -> float:
  """Mean binary cross-entropy of same-person probabilities, clipped away from 0 and 1."""
  labels = np.asarray(labels, np.float64)
  p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
  return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """ROC points (fpr, tpr, thresholds); thresholds descend from +inf through each distinct score."""
  scores, labels = _as_arrays(scores, labels)
  positives, negatives = labels.sum(), (1 - labels).sum()
  if positives == 0 or negatives == 0:
    raise ValueError(f'the ROC needs both classes, got {positives} same and {negatives} different')
  distinct, positives_above, negatives_above = _counts_above(scores, labels)
  # Threshold = distinct[i] accepts everything >= distinct[i] = above distinct[i-1].
  accepted_positives = np.concatenate([[0], positives_above[::-1][1:], [positives]])
  accepted_negatives = np.concatenate([[0], negatives_above[::-1][1:], [negatives]])
  thresholds = np.concatenate([[np.inf], distinct[::-1]])
  return accepted_negatives / negatives, accepted_positives / positives, thresholds


def roc_auc(scores, labels) -> float:
  """Area under the ROC curve (trapezoids; a tie between a same and a different pair counts 1/2)."""
  fpr, tpr, _ = roc_curve(scores, labels)
  return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def equal_error_rate(scores, labels) -> float:
  """The rate where false accepts equal false rejects, interpolated linearly along the ROC."""
  fpr, tpr, _ = roc_curve(scores, labels)
  fnr = 1 - tpr
  gap = fnr - fpr  # Falls from 1 to -1 along the curve.
  i = int(np.argmax(gap <= 0))
  if gap[i] == 0:
    return float(fpr[i])
  weight = gap[i - 1] / (gap[i - 1] - gap[i])
  return float(fpr[i - 1] + weight * (fpr[i] - fpr[i - 1]))


def tar_at_far(scores, labels, far: float) -> float:
  """The highest true accept rate at a threshold whose false accept rate is at most `far`.

  On LFW a FAR below ~1e-2 rests on a handful of impostor pairs (300 per View 2 fold, 500 in
  pairsDevTest): read it with that in mind.
  """
  fpr, tpr, _ = roc_curve(scores, labels)
  return float(np.max(tpr[fpr <= far]))


def verification_report(val_scores, val_labels, test_scores, test_labels) -> dict:
  """View 1 numbers: threshold chosen on validation, applied to test; 0.5 and ROC metrics beside."""
  threshold = best_threshold(val_scores, val_labels)
  _, test_labels_array = _as_arrays(test_scores, test_labels)
  return {
      'threshold': threshold,
      'val_acc': accuracy(val_scores, val_labels, threshold),
      'test_acc': accuracy(test_scores, test_labels, threshold),
      'test_acc_at_0_5': accuracy(test_scores, test_labels, 0.5),
      'test_auc': roc_auc(test_scores, test_labels),
      'test_eer': equal_error_rate(test_scores, test_labels),
      'test_tar_at_far_1e-2': tar_at_far(test_scores, test_labels, 1e-2),
      'test_pairs': int(test_labels_array.size),
      'test_different_pairs': int((test_labels_array == 0).sum()),
  }


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
  """Mean and standard error as LFW reports them: sample std (n - 1) over sqrt(n)."""
  values = np.asarray(values, dtype=np.float64)
  if values.size < 2:
    return float(values.mean()), float('nan')
  return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def format_mean_and_standard_error(mean: float, standard_error: float, digits: int = 4) -> str:
  """The mean with its standard error, or with a note that one fold has none."""
  if math.isnan(standard_error):
    return f'{mean:.{digits}f} (one fold: no standard error)'
  return f'{mean:.{digits}f} +- {standard_error:.{digits}f} (standard error)'


def average_roc(curves: Sequence[tuple[np.ndarray, np.ndarray]],
                fpr_grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Vertical average of ROC curves: the mean TPR of each (fpr, tpr) curve on a common FPR grid."""
  if fpr_grid is None:
    fpr_grid = np.linspace(0.0, 1.0, 201)
  fpr_grid = np.asarray(fpr_grid, dtype=np.float64)
  tprs = []
  for fpr, tpr in curves:
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    # The curve joins its points with straight lines; at a vertical step take its top. Between the
    # last point at or left of f and the next one the line is flat (or a tie's diagonal).
    left = np.clip(np.searchsorted(fpr, fpr_grid, side='right') - 1, 0, fpr.size - 1)
    right = np.minimum(left + 1, fpr.size - 1)
    span = fpr[right] - fpr[left]
    weight = np.where(span > 0, (fpr_grid - fpr[left]) / np.where(span > 0, span, 1.0), 0.0)
    tprs.append(tpr[left] + weight * (tpr[right] - tpr[left]))
  return fpr_grid, np.mean(tprs, axis=0)


def one_shot_trials(person_ids, num_way: int, num_trials: int,
                    seed: int | Sequence[int]) -> np.ndarray:
  """Seeded N-way one-shot trials over images labelled with people.

  Each trial picks `num_way` distinct people who have at least two images; the first is the query's
  person, whose query and reference are two different images of theirs; each other person gives
  one reference image. Returns int (num_trials, num_way + 1) image indices:
  [query, reference of the true person, references of the num_way - 1 others].
  """
  person_ids = np.asarray(person_ids).reshape(-1)
  people, counts = np.unique(person_ids, return_counts=True)
  eligible = people[counts >= 2]
  if eligible.size < num_way:
    raise ValueError(f'{num_way}-way one-shot needs {num_way} people with two or more images, '
                     f'found {eligible.size}')
  images_of = {p: np.flatnonzero(person_ids == p) for p in eligible}
  rng = np.random.default_rng(seed)
  trials = np.empty((num_trials, num_way + 1), dtype=np.int64)
  for t in range(num_trials):
    chosen = rng.choice(eligible, size=num_way, replace=False)
    query, reference = rng.choice(images_of[chosen[0]], size=2, replace=False)
    others = [rng.choice(images_of[p]) for p in chosen[1:]]
    trials[t] = [query, reference, *others]
  return trials


def one_shot_correct(trial_scores) -> np.ndarray:
  """Per trial, whether the true reference (column 0) strictly outscores every other candidate.

  A tie with another candidate counts as a miss, so a constant scorer gets 0, not 1/N.
  """
  trial_scores = np.asarray(trial_scores, dtype=np.float64)
  return trial_scores[:, 0] > trial_scores[:, 1:].max(axis=1)


def wilson_interval(successes: int, trials: int,
                    z: float = 1.959963984540054) -> tuple[float, float]:
  """Wilson score interval for a binomial proportion (95% by default)."""
  if trials <= 0:
    return float('nan'), float('nan')
  p = successes / trials
  denominator = 1 + z * z / trials
  centre = (p + z * z / (2 * trials)) / denominator
  half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
  return max(0.0, centre - half_width), min(1.0, centre + half_width)
