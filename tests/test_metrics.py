"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from lfw_siamese.evaluation import metrics

# Hand-worked example: sorted by score, labels are 0 (0.1), 1 (0.35), 0 (0.4), 1 (0.8).
SCORES = [0.1, 0.4, 0.35, 0.8]
LABELS = [0, 0, 1, 1]


def test_best_threshold_is_the_lowest_most_accurate_midpoint():
  # Midpoints 0.225 (3/4 right), 0.375 (2/4), 0.6 (3/4): the lowest best one.
  assert metrics.best_threshold(SCORES, LABELS) == pytest.approx(0.225)
  assert metrics.accuracy(SCORES, LABELS, 0.225) == pytest.approx(0.75)
  assert metrics.accuracy(SCORES, LABELS, 0.375) == pytest.approx(0.5)


def test_best_threshold_never_splits_tied_scores():
  scores, labels = [0.2, 0.6, 0.6, 0.9], [0, 0, 1, 1]
  threshold = metrics.best_threshold(scores, labels)
  assert threshold == pytest.approx(0.4)  # 0.4 and 0.75 both give 3/4; never 0.6 itself.
  assert metrics.accuracy(scores, labels, threshold) == pytest.approx(0.75)


def test_best_threshold_separates_perfectly():
  assert metrics.best_threshold([0.9, 0.1, 0.7, 0.2], [1, 0, 1, 0]) == pytest.approx(0.45)


def test_best_threshold_falls_back_to_all_different_or_all_same():
  # Positives score lowest: predicting everything "different" (2/3) beats every midpoint (<= 1/3).
  scores, labels = [0.9, 0.8, 0.1], [0, 0, 1]
  threshold = metrics.best_threshold(scores, labels)
  assert threshold > 0.9
  assert metrics.accuracy(scores, labels, threshold) == pytest.approx(2 / 3)
  # All scores tied: no midpoint; both extremes give 1/2, "all same" wins the tie.
  assert metrics.best_threshold([0.5] * 4, [1, 0, 1, 0]) == 0.5


def test_best_threshold_maximises_accuracy_against_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(20):
    scores = rng.integers(0, 8, size=30) / 8  # Many ties.
    labels = rng.integers(0, 2, size=30)
    threshold = metrics.best_threshold(scores, labels)
    brute = max(metrics.accuracy(scores, labels, t) for t in np.r_[scores, 2.0])
    assert metrics.accuracy(scores, labels, threshold) == pytest.approx(brute)
    assert threshold == scores.min() or threshold not in set(scores.tolist())


def test_roc_curve_by_hand():
  fpr, tpr, thresholds = metrics.roc_curve(SCORES, LABELS)
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
  np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_curve_needs_both_classes():
  with pytest.raises(ValueError, match='both classes'):
    metrics.roc_curve([0.1, 0.2], [1, 1])


def test_roc_auc_by_hand_and_with_ties():
  assert metrics.roc_auc(SCORES, LABELS) == pytest.approx(0.75)
  # Pairs (same, different): (0.6, 0.2)=1, (0.6, 0.6)=1/2, (0.9, 0.2)=1, (0.9, 0.6)=1 -> 3.5/4.
  assert metrics.roc_auc([0.2, 0.6, 0.6, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
  assert metrics.roc_auc([0.5] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)
  assert metrics.roc_auc([0.9, 0.1], [0, 1]) == pytest.approx(0.0)


def test_roc_auc_equals_mann_whitney_statistic():
  rng = np.random.default_rng(1)
  scores = rng.integers(0, 5, size=40).astype(float)
  labels = rng.integers(0, 2, size=40)
  positives, negatives = scores[labels == 1], scores[labels == 0]
  wins = (positives[:, None] > negatives[None]).sum() + 0.5 * (
      positives[:, None] == negatives[None]).sum()
  assert metrics.roc_auc(scores, labels) == pytest.approx(wins / (positives.size * negatives.size))


def test_equal_error_rate_by_hand():
  assert metrics.equal_error_rate(SCORES, LABELS) == pytest.approx(0.5)  # A ROC point has fpr=fnr.
  assert metrics.equal_error_rate([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]) == pytest.approx(0.0)
  # ROC (0, 0.5) -> (0.5, 1) along a tie: fnr = fpr at 0.25 on that segment.
  assert metrics.equal_error_rate([3, 2, 2, 1], [1, 1, 0, 0]) == pytest.approx(0.25)
  # Two same, four different: fnr = fpr = 0.25 on the vertical step at fpr 0.25.
  assert metrics.equal_error_rate([6, 5, 4, 3, 2, 1], [1, 0, 1, 0, 0, 0]) == pytest.approx(0.25)


def test_tar_at_far_by_hand():
  assert metrics.tar_at_far(SCORES, LABELS, 0.0) == pytest.approx(0.5)
  assert metrics.tar_at_far(SCORES, LABELS, 0.49) == pytest.approx(0.5)
  assert metrics.tar_at_far(SCORES, LABELS, 0.5) == pytest.approx(1.0)


def test_verification_report_chooses_threshold_on_validation_only():
  val_scores, val_labels = [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]  # Threshold 0.25.
  test_scores, test_labels = [0.22, 0.28, 0.6, 0.7], [0, 1, 1, 0]
  report = metrics.verification_report(val_scores, val_labels, test_scores, test_labels)
  assert report['threshold'] == pytest.approx(0.25)
  assert report['val_acc'] == pytest.approx(1.0)
  assert report['test_acc'] == pytest.approx(0.75)  # 0.22, 0.28, 0.6 right; 0.7 wrong.
  assert report['test_acc_at_0_5'] == pytest.approx(0.5)  # 0.22, 0.6 right.
  # Descending: 0.7 (different), 0.6, 0.28 (same), 0.22 (different).
  assert report['test_auc'] == pytest.approx(0.5)
  assert report['test_eer'] == pytest.approx(0.5)
  assert report['test_tar_at_far_1e-2'] == pytest.approx(0.0)
  assert report['test_pairs'] == 4 and report['test_different_pairs'] == 2


def test_bad_inputs_are_rejected():
  with pytest.raises(ValueError, match='differ in length'):
    metrics.best_threshold([0.1, 0.2], [1])
  with pytest.raises(ValueError, match='0 or 1'):
    metrics.accuracy([0.1, 0.2], [1, 2], 0.5)
  with pytest.raises(ValueError, match='NaN'):
    metrics.roc_auc([0.1, float('nan')], [1, 0])


def test_mean_and_standard_error_uses_sample_std():
  mean, standard_error = metrics.mean_and_standard_error([0.7, 0.8, 0.9])
  assert mean == pytest.approx(0.8)
  assert standard_error == pytest.approx(0.1 / math.sqrt(3))


def test_one_fold_prints_its_mean_without_a_standard_error():
  mean, standard_error = metrics.mean_and_standard_error([0.8917])
  assert metrics.format_mean_and_standard_error(mean, standard_error) == (
      '0.8917 (one fold: no standard error)')
  assert metrics.format_mean_and_standard_error(0.745, 0.00957) == (
      '0.7450 +- 0.0096 (standard error)')


def test_average_roc_is_the_vertical_mean():
  perfect = (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]))
  chance = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
  fpr, tpr = metrics.average_roc([perfect, chance], np.array([0.0, 0.5, 1.0]))
  np.testing.assert_allclose(fpr, [0.0, 0.5, 1.0])
  np.testing.assert_allclose(tpr, [0.5, 0.75, 1.0])


def test_average_roc_keeps_steps_and_tie_diagonals():
  step = (np.array([0.0, 0.5, 0.5, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]))  # Flat, then up at 0.5.
  _, tpr = metrics.average_roc([step], np.array([0.0, 0.25, 0.5, 0.75]))
  np.testing.assert_allclose(tpr, [0.0, 0.0, 1.0, 1.0])
  fpr, tpr, _ = metrics.roc_curve([3, 2, 2, 1], [1, 1, 0, 0])  # A tie: (0, .5) -> (.5, 1).
  _, averaged = metrics.average_roc([(fpr, tpr)], np.array([0.0, 0.25, 0.5]))
  np.testing.assert_allclose(averaged, [0.5, 0.75, 1.0])


def test_one_shot_trials_are_valid_and_seeded():
  # People 0..5 with 3 images each, person 6 with one image (never chosen).
  person_ids = np.array([p for p in range(6) for _ in range(3)] + [6])
  trials = metrics.one_shot_trials(person_ids, num_way=4, num_trials=50, seed=3)
  assert trials.shape == (50, 5)
  for query, *references in trials:
    people = person_ids[references]
    assert query != references[0] and person_ids[query] == people[0]
    assert len(set(people.tolist())) == 4 and 6 not in people
  np.testing.assert_array_equal(trials, metrics.one_shot_trials(person_ids, 4, 50, seed=3))
  assert not np.array_equal(trials, metrics.one_shot_trials(person_ids, 4, 50, seed=4))


def test_one_shot_trials_need_enough_people():
  with pytest.raises(ValueError, match='5-way one-shot needs 5 people'):
    metrics.one_shot_trials([0, 0, 1, 1, 2], num_way=5, num_trials=1, seed=0)


def test_one_shot_correct_counts_ties_as_misses():
  scores = [[0.9, 0.1, 0.2], [0.3, 0.4, 0.1], [0.5, 0.5, 0.1]]
  np.testing.assert_array_equal(metrics.one_shot_correct(scores), [True, False, False])


def test_wilson_interval_by_hand():
  low, high = metrics.wilson_interval(50, 100)
  assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
  low, high = metrics.wilson_interval(0, 10)
  assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
