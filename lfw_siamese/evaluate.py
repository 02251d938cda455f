"""Evaluate as the field does: `python -m lfw_siamese.evaluate --workdir DIR --protocol PROTOCOL`.

- view1: threshold chosen on the run's validation pairs, applied to pairsDevTest.
- view2: DIR/fold_0..fold_9 (experiments/view2_folds.py trains them), each model trained without
  its fold; threshold chosen on the other nine folds' pairs; mean accuracy +- standard error.
- oneshot: N-way one-shot identification among test people with two or more images.
Each prints a table, writes DIR/eval_PROTOCOL.json and refreshes the figures and DIR/report.md.
A workdir with a fusion stage (classic/fusion.py) is scored with it; --cnn-only scores the network
alone and writes DIR/eval_PROTOCOL_cnn_only.json, leaving the figures and report as they are.
"""

import argparse
import sys
from typing import Sequence

import numpy as np

from lfw_siamese import files
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import datasets
from lfw_siamese.data import lists
from lfw_siamese.data import loading
from lfw_siamese.evaluation import metrics
from lfw_siamese.evaluation import plots
from lfw_siamese.evaluation import report

PROTOCOLS = ('view1', 'view2', 'oneshot')
ONE_SHOT_WAYS = (5, 10, 20)


def _load(workdir: str, lfw_dir: str | None, batch_size: int, with_fusion: bool = True):
  """A Verifier for the workdir, with the data location overridden when asked."""
  from lfw_siamese import inference  # pylint: disable=g-import-not-at-top  (JAX loads slowly)
  verifier = inference.load(workdir, batch_size=batch_size, with_fusion=with_fusion)
  if lfw_dir:
    with verifier.config.unlocked():
      verifier.config.data.lfw_dir = lfw_dir
  return verifier


def evaluate_view1(workdir: str, *, lfw_dir: str | None = None, batch_size: int = 64,
                   with_fusion: bool = True) -> dict:
  """Scores the run's validation and test pairs; threshold from validation; figures and JSON."""
  verifier = _load(workdir, lfw_dir, batch_size, with_fusion)
  if verifier.config.data.protocol != 'view1':
    raise ValueError(f'{workdir}: trained with data.protocol {verifier.config.data.protocol!r} '
                     f'(fold {verifier.config.data.fold}); --protocol view1 scores View 1 runs, '
                     'and View 2 fold runs are scored together with --protocol view2 on their '
                     'parent folder')
  data = loading.training_data(verifier.config)
  val_scores = verifier.score_pairs(data.validation)
  test_scores = verifier.score_pairs(data.test)
  result = metrics.verification_report(val_scores, data.validation.labels, test_scores,
                                       data.test.labels)
  result.update(protocol='view1', paradigm=verifier.config.data.paradigm,
                val_pairs=int(data.validation.labels.size), tar_at_far_caveat=report.TAR_CAVEAT)
  if not with_fusion:
    files.write_json(workdir_lib.result_path(workdir, 'view1', with_fusion), result)
    return result
  with files.atomic_write(workdir_lib.path(workdir, workdir_lib.VIEW1_SCORES), 'wb') as f:
    np.savez(f, test_scores=test_scores, test_labels=data.test.labels,
             test_names=data.test.names, test_numbers=data.test.numbers, val_scores=val_scores,
             val_labels=data.validation.labels)
  files.write_json(workdir_lib.result_path(workdir, 'view1'), result)
  report.plot_learning_curves(workdir)
  report.plot_test_pairs(workdir, data.test.images, data.test.labels, test_scores,
                         result['threshold'])
  report.write_report(workdir)
  return result


def evaluate_fold(verifier, threshold_pairs, test_pairs) -> dict:
  """One View 2 fold: threshold from the nine training folds' pairs, scored on the held-out fold."""
  threshold_scores = verifier.score_pairs(threshold_pairs)
  test_scores = verifier.score_pairs(test_pairs)
  return fold_result(threshold_scores, threshold_pairs.labels, test_scores, test_pairs.labels)


def fold_result(threshold_scores, threshold_labels, test_scores, test_labels) -> dict:
  """The numbers of one fold, with its ROC points for the fold average."""
  threshold = metrics.best_threshold(threshold_scores, threshold_labels)
  fpr, tpr, _ = metrics.roc_curve(test_scores, test_labels)
  return {
      'threshold': threshold,
      'train_folds_acc': metrics.accuracy(threshold_scores, threshold_labels, threshold),
      'test_acc': metrics.accuracy(test_scores, test_labels, threshold),
      'test_acc_at_0_5': metrics.accuracy(test_scores, test_labels, 0.5),
      'test_auc': metrics.roc_auc(test_scores, test_labels),
      'test_eer': metrics.equal_error_rate(test_scores, test_labels),
      'test_pairs': int(np.size(test_labels)),
      'roc': {'fpr': fpr.tolist(), 'tpr': tpr.tolist()},
  }


def summarize_folds(fold_results: Sequence[dict]) -> dict:
  """Mean accuracy and standard error, mean AUC/EER, and the fold-averaged ROC over folds."""
  accuracy, standard_error = metrics.mean_and_standard_error([f['test_acc'] for f in fold_results])
  auc, auc_standard_error = metrics.mean_and_standard_error([f['test_auc'] for f in fold_results])
  fpr, tpr = metrics.average_roc(
      [(np.array(f['roc']['fpr']), np.array(f['roc']['tpr'])) for f in fold_results])
  return {
      'mean_acc': accuracy,
      'standard_error': standard_error,
      'mean_auc': auc,
      'auc_standard_error': auc_standard_error,
      'averaged_roc_auc': float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
      'mean_eer': float(np.mean([f['test_eer'] for f in fold_results])),
      'mean_acc_at_0_5': float(np.mean([f['test_acc_at_0_5'] for f in fold_results])),
      'averaged_roc': {'fpr': fpr.tolist(), 'tpr': tpr.tolist()},
  }


def evaluate_view2(workdir: str, *, folds: Sequence[int] = tuple(range(10)),
                   lfw_dir: str | None = None, batch_size: int = 64,
                   with_fusion: bool = True) -> dict:
  """The 10-fold protocol over DIR/fold_k workdirs; figures and DIR/eval_view2.json."""
  missing = [k for k in folds if not workdir_lib.has_summary(workdir_lib.fold_workdir(workdir, k))]
  if missing:
    raise FileNotFoundError(
        f'{workdir}: folds {missing} are not trained yet (no fold_k/summary.json); run '
        f'python experiments/view2_folds.py --workdir {workdir}')
  fold_results, paradigms = [], set()
  for k in folds:
    verifier = _load(workdir_lib.fold_workdir(workdir, k), lfw_dir, batch_size, with_fusion)
    data_config = verifier.config.data
    if data_config.protocol != 'view2' or int(data_config.fold) != k:
      raise ValueError(f'{workdir_lib.fold_workdir(workdir, k)}/config.json: expected '
                       'data.protocol view2 and '
                       f'data.fold {k}, got {data_config.protocol} fold {data_config.fold}')
    paradigms.add(data_config.paradigm)
    threshold_pairs = datasets.concatenate_pairs(
        [loading.load_pairs(data_config, f'fold{j}') for j in range(10) if j != k])
    test_pairs = loading.load_pairs(data_config, f'fold{k}')
    fold_results.append({'fold': k, **evaluate_fold(verifier, threshold_pairs, test_pairs)})
    print(f"fold {k}: accuracy {fold_results[-1]['test_acc']:.4f} at threshold "
          f"{fold_results[-1]['threshold']:.4f}", file=sys.stderr)
  result = {'protocol': 'view2', 'paradigm': '/'.join(sorted(paradigms)),
            'complete': sorted(folds) == list(range(10)), **summarize_folds(fold_results),
            'folds': fold_results}
  files.write_json(workdir_lib.result_path(workdir, 'view2', with_fusion), result)
  if not with_fusion:
    return result
  plots.roc({f"fold average (AUC {result['averaged_roc_auc']:.3f})":
             (np.array(result['averaged_roc']['fpr']), np.array(result['averaged_roc']['tpr']))},
            workdir_lib.figure_path(workdir, report.ROC_VIEW2),
            title='View 2: accuracy ' + metrics.format_mean_and_standard_error(
                result['mean_acc'], result['standard_error'], digits=3),
            faint_curves=[(np.array(f['roc']['fpr']), np.array(f['roc']['tpr']))
                          for f in fold_results], faint_label='single folds')
  report.write_report(workdir)
  return result


def one_shot_split(data_config) -> str:
  """The test people of a run: View 1 test people, or the held-out View 2 fold's."""
  return 'view1_test' if data_config.protocol == 'view1' else f'fold{int(data_config.fold)}'


def score_one_shot(verifier, embedded, trials: np.ndarray) -> np.ndarray:
  """(T, N) probabilities of each trial's query against its N references (the true one first)."""
  queries = np.repeat(trials[:, :1], trials.shape[1] - 1, axis=1).reshape(-1)
  references = trials[:, 1:].reshape(-1)
  scores = verifier.score_embedded(verifier.take(embedded, queries),
                                   verifier.take(embedded, references))
  return np.asarray(scores).reshape(trials.shape[0], trials.shape[1] - 1)


def evaluate_one_shot(workdir: str, *, ways: Sequence[int] = ONE_SHOT_WAYS, trials: int = 2000,
                      seed: int = 0, lfw_dir: str | None = None, batch_size: int = 64,
                      with_fusion: bool = True) -> dict:
  """Koch et al.'s N-way one-shot identification; figures and DIR/eval_oneshot.json."""
  verifier = _load(workdir, lfw_dir, batch_size, with_fusion)
  split = one_shot_split(verifier.config.data)
  identities = loading.load_identities(verifier.config.data, split)
  people, counts = np.unique(identities.person_ids, return_counts=True)
  keep = np.isin(identities.person_ids, people[counts >= 2])
  person_ids = identities.person_ids[keep]
  embedded = verifier.embed_for_scoring(identities.images[keep])
  results = []
  for num_way in ways:
    trial_images = metrics.one_shot_trials(person_ids, num_way, trials, seed=(seed, num_way))
    correct = metrics.one_shot_correct(score_one_shot(verifier, embedded, trial_images))
    results.append({'num_way': num_way, 'trials': trials, 'correct': int(correct.sum()),
                    'accuracy': float(correct.mean()),
                    'ci95': list(metrics.wilson_interval(int(correct.sum()), trials))})
  result = {'protocol': 'oneshot', 'split': split, 'people': int((counts >= 2).sum()),
            'images': int(keep.sum()), 'seed': seed, 'results': results}
  files.write_json(workdir_lib.result_path(workdir, 'oneshot', with_fusion), result)
  if not with_fusion:
    return result
  plots.one_shot_accuracy(results, workdir_lib.figure_path(workdir, report.ONE_SHOT))
  report.write_report(workdir)
  return result


def format_table(protocol: str, result: dict) -> str:
  """The human-readable table printed for a protocol's result."""
  if protocol == 'view1':
    rows = [('threshold (chosen on validation)', result['threshold']),
            ('test accuracy', result['test_acc']), ('test ROC AUC', result['test_auc']),
            ('test EER', result['test_eer']),
            ('test TAR@FAR=1e-2 (few impostors)', result['test_tar_at_far_1e-2']),
            ('test accuracy at 0.5 (not protocol)', result['test_acc_at_0_5'])]
    return '\n'.join(f'{name:<38} {value:.4f}' for name, value in rows)
  if protocol == 'view2':
    lines = [f"{'fold':>4} {'threshold':>10} {'accuracy':>9} {'AUC':>7} {'EER':>7}"]
    lines += [f"{f['fold']:>4} {f['threshold']:>10.4f} {f['test_acc']:>9.4f} "
              f"{f['test_auc']:>7.4f} {f['test_eer']:>7.4f}" for f in result['folds']]
    accuracy = metrics.format_mean_and_standard_error(result['mean_acc'], result['standard_error'])
    lines.append(f"mean accuracy {accuracy}, AUC {result['mean_auc']:.4f}, fold-averaged ROC AUC "
                 f"{result['averaged_roc_auc']:.4f}" + ('' if result['complete'] else
                                                        '  [partial: not all ten folds]'))
    return '\n'.join(lines)
  lines = [f"{result['people']} people, {result['images']} images ({result['split']})",
           f"{'N':>3} {'trials':>7} {'accuracy':>9} {'95% CI':>17} {'chance':>7}"]
  lines += [f"{r['num_way']:>3} {r['trials']:>7} {r['accuracy']:>9.4f} "
            f"{r['ci95'][0]:>8.4f}-{r['ci95'][1]:.4f} {1 / r['num_way']:>7.4f}"
            for r in result['results']]
  return '\n'.join(lines)


def _int_list(text: str) -> list[int]:
  try:
    return [int(x) for x in text.split(',') if x.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m lfw_siamese.evaluate', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--protocol', required=True, choices=PROTOCOLS)
  parser.add_argument('--lfw-dir', help="override the run's data.lfw_dir (else LFW_DIR)")
  parser.add_argument('--batch-size', type=int, default=64)
  parser.add_argument('--folds', type=_int_list, default=list(range(10)),
                      help='view2: the folds to score (default all ten)')
  parser.add_argument('--ways', type=_int_list, default=list(ONE_SHOT_WAYS),
                      help='oneshot: the values of N (default 5,10,20)')
  parser.add_argument('--trials', type=int, default=2000, help='oneshot: trials per N')
  parser.add_argument('--seed', type=int, default=0, help='oneshot: seed of the trials')
  parser.add_argument('--cnn-only', action='store_true',
                      help="score with the network alone, ignoring the workdir's fusion stage")
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  common = {'lfw_dir': args.lfw_dir, 'batch_size': args.batch_size,
            'with_fusion': not args.cnn_only}
  try:
    if args.protocol == 'view1':
      result = evaluate_view1(args.workdir, **common)
    elif args.protocol == 'view2':
      if not args.folds or any(not 0 <= k < 10 for k in args.folds):
        raise ValueError(f'--folds: expected fold numbers 0..9, got {args.folds}')
      result = evaluate_view2(args.workdir, folds=args.folds, **common)
    else:
      result = evaluate_one_shot(args.workdir, ways=args.ways, trials=args.trials,
                                 seed=args.seed, **common)
  except (FileNotFoundError, ValueError, lists.LfwDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(format_table(args.protocol, result))
  written = workdir_lib.result_path(args.workdir, args.protocol, not args.cnn_only)
  print(f'wrote {written}' + ('' if args.cnn_only else
                              f' and {workdir_lib.path(args.workdir, workdir_lib.REPORT)}'))
  return 0


if __name__ == '__main__':
  sys.exit(main())
