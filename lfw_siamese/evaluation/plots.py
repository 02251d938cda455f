"""PNG figures of a run: learning curves, ROC, score histograms, example pairs (matplotlib, Agg)."""

import json
from typing import Mapping, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import matplotlib.patches  # pylint: disable=g-import-not-at-top
import matplotlib.ticker  # pylint: disable=g-import-not-at-top
import numpy as np

from lfw_siamese import files

_SAME_COLOUR, _DIFFERENT_COLOUR = '#1b7837', '#b2182b'


def read_metrics(path: str) -> list[dict]:
  """Rows of a metrics.jsonl file (one JSON object per epoch); blank lines are skipped."""
  rows = []
  with open(path) as f:
    for line_number, line in enumerate(f, 1):
      if line.strip():
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f'{path}:{line_number}: expected a JSON object, got {line.strip()!r}'
                           f' ({e.msg})') from None
  return rows


def _save(figure, path: str) -> str:
  with files.atomic_write(path, 'wb') as f:
    figure.savefig(f, format='png', dpi=110, bbox_inches='tight')
  plt.close(figure)
  return path


def learning_curves(rows: Sequence[Mapping], path: str, best_epoch: int | None = None,
                    train_loss: str = 'bce') -> str:
  """Loss and accuracy (at probability 0.5) per epoch, train and validation, side by side.

  Validation loss is always the pair BCE; a train loss of another kind (`train_loss`, say supcon)
  gets its own scale on the right.
  """
  figure, axes = plt.subplots(1, 2, figsize=(10.5, 3.8), layout='constrained')
  for axis, quantity in zip(axes, ('loss', 'acc')):
    lines = []
    for split, style, color in (('train', '-o', 'C0'), ('val', '-s', 'C1')):
      points = [(r['epoch'], r[f'{split}_{quantity}']) for r in rows
                if r.get(f'{split}_{quantity}') is not None]
      if not points:
        continue
      label = {'train': 'train', 'val': 'validation'}[split]
      target = axis
      if quantity == 'loss' and train_loss != 'bce':
        label += f' ({train_loss})' if split == 'train' else ' (pair BCE)'
        if split == 'train':
          target = axis.twinx()
          target.set_ylabel(f'train loss ({train_loss})')
      epochs, values = zip(*points)
      lines += target.plot(epochs, values, style, color=color, markersize=3, label=label)
    if best_epoch:
      lines.append(axis.axvline(best_epoch, color='grey', linestyle=':',
                                label=f'best epoch ({best_epoch})'))
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_xlabel('epoch')
    axis.set_ylabel({'loss': 'loss', 'acc': 'accuracy at probability 0.5'}[quantity])
    axis.set_title({'loss': 'Loss', 'acc': 'Accuracy'}[quantity])
    axis.grid(alpha=0.3)
    axis.legend(handles=lines, fontsize='small')
  return _save(figure, path)


def roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str, title: str = 'ROC',
        faint_curves: Sequence[tuple[np.ndarray, np.ndarray]] = (),
        faint_label: str = '') -> str:
  """ROC curves, one per label (the label should carry its AUC), with the chance diagonal.

  `faint_curves` (per-fold curves, say) are drawn thin and grey under the labelled ones.
  """
  figure, axis = plt.subplots(figsize=(4.8, 4.6))
  for i, (fpr, tpr) in enumerate(faint_curves):
    axis.plot(fpr, tpr, color='grey', alpha=0.35, linewidth=0.8,
              label=faint_label if i == 0 and faint_label else None)
  for label, (fpr, tpr) in curves.items():
    axis.plot(fpr, tpr, label=label)
  axis.plot([0, 1], [0, 1], ':', color='grey', label='chance')
  axis.set_xlim(0, 1)
  axis.set_ylim(0, 1.01)
  axis.set_xlabel('false accept rate (different pairs called same)')
  axis.set_ylabel('true accept rate')
  axis.set_title(title)
  axis.grid(alpha=0.3)
  axis.legend(loc='lower right', fontsize='small')
  return _save(figure, path)


def score_histograms(scores: np.ndarray, labels: np.ndarray, threshold: float, path: str,
                     title: str = 'Scores of test pairs') -> str:
  """Histograms of same-person probabilities for same and different pairs, with the threshold."""
  scores, labels = np.asarray(scores), np.asarray(labels)
  figure, axis = plt.subplots(figsize=(6, 3.8))
  # Bins over the scores' own range: a model's probabilities often sit in a narrow band.
  low, high = scores.min(), scores.max()
  margin = max(high - low, 1e-6) * 0.02
  bins = np.linspace(low - margin, high + margin, 41)
  axis.hist(scores[labels == 1], bins=bins, alpha=0.6, color=_SAME_COLOUR,
            label=f'same person ({int((labels == 1).sum())})')
  axis.hist(scores[labels == 0], bins=bins, alpha=0.6, color=_DIFFERENT_COLOUR,
            label=f'different people ({int((labels == 0).sum())})')
  axis.axvline(threshold, color='black', linestyle='--', label=f'threshold {threshold:.3f}')
  axis.set_xlabel('same-person probability')
  axis.set_ylabel('pairs')
  axis.set_title(title)
  axis.legend(fontsize='small')
  return _save(figure, path)


def example_pairs(images: np.ndarray, labels: np.ndarray, scores: np.ndarray, threshold: float,
                  path: str, per_group: int = 4, seed: int = 0) -> str:
  """A grid of test pairs in four rows: same/different, classified correctly/incorrectly.

  Args:
    images: uint8 (N, 2, H, W, C) pairs as the model saw them.
    labels: (N,) 1 = same person.
    scores: (N,) same-person probabilities.
    threshold: "same" when score >= threshold.
    path: where to write the PNG.
    per_group: pairs shown per row (drawn with a fixed seed).
    seed: which pairs are drawn.
  """
  images, labels, scores = np.asarray(images), np.asarray(labels), np.asarray(scores)
  predicted_same = scores >= threshold
  groups = (
      ('same, called same', (labels == 1) & predicted_same),
      ('different, called different', (labels == 0) & ~predicted_same),
      ('same, called different (miss)', (labels == 1) & ~predicted_same),
      ('different, called same (false accept)', (labels == 0) & predicted_same),
  )
  rng = np.random.default_rng(seed)
  figure, axes = plt.subplots(len(groups), per_group, figsize=(2.3 * per_group, 1.55 * len(groups)),
                              squeeze=False)
  for row, (name, mask) in enumerate(groups):
    indices = np.flatnonzero(mask)
    chosen = np.sort(rng.choice(indices, size=min(per_group, indices.size), replace=False))
    correct = 'miss' not in name and 'false' not in name
    for column in range(per_group):
      axis = axes[row, column]
      axis.set_xticks([])
      axis.set_yticks([])
      for spine in axis.spines.values():
        spine.set_visible(False)
      if column == 0:
        axis.set_ylabel(f'{name}\n({indices.size})', fontsize=7, rotation=0, ha='right',
                        va='center')
      if column >= chosen.size:
        continue
      index = chosen[column]
      gap = np.full((images.shape[2], max(1, images.shape[3] // 16), images.shape[4]), 255,
                    images.dtype)
      pair = np.concatenate([images[index, 0], gap, images[index, 1]], axis=1)
      if pair.shape[-1] == 1:
        axis.imshow(pair[..., 0], cmap='gray', vmin=0, vmax=255)
      else:
        axis.imshow(pair)
      axis.set_title(f'p = {scores[index]:.3f}', fontsize=8,
                     color=_SAME_COLOUR if correct else _DIFFERENT_COLOUR)
  figure.suptitle(f'Test pairs at threshold {threshold:.3f}', fontsize=10)
  return _save(figure, path)


def one_shot_accuracy(results: Sequence[Mapping], path: str) -> str:
  """One-shot identification accuracy against N with 95% intervals and the chance level."""
  ways = [r['num_way'] for r in results]
  accuracy = np.array([r['accuracy'] for r in results])
  low = accuracy - np.array([r['ci95'][0] for r in results])
  high = np.array([r['ci95'][1] for r in results]) - accuracy
  figure, axis = plt.subplots(figsize=(5, 3.6))
  axis.errorbar(ways, accuracy, yerr=[low, high], fmt='-o', capsize=4, label='model (95% CI)')
  axis.plot(ways, [1 / n for n in ways], ':o', color='grey', label='chance (1/N)')
  axis.set_xticks(ways)
  axis.set_ylim(0, 1)
  axis.set_xlabel('N (people to choose from)')
  axis.set_ylabel('accuracy')
  axis.set_title('N-way one-shot identification')
  axis.grid(alpha=0.3)
  axis.legend(fontsize='small')
  return _save(figure, path)


def fusion_scatter(network_logits: np.ndarray, lbp_logits: np.ndarray, labels: np.ndarray,
                   network_weight: float, bias: float, threshold: float, path: str,
                   title: str = '') -> str:
  """Each pair's network logit against its LBP descriptors' part of the fused logit, same and
  different apart, with the fused decision line."""
  labels = np.asarray(labels)
  figure, axis = plt.subplots(figsize=(5.8, 4.6), layout='constrained')
  for value, colour, name in ((0, _DIFFERENT_COLOUR, 'different people'),
                              (1, _SAME_COLOUR, 'same person')):
    chosen = labels == value
    axis.scatter(network_logits[chosen], lbp_logits[chosen], s=7, alpha=0.5, color=colour,
                 label=f'{name} ({int(chosen.sum())})')
  # Fused probability = threshold where network_weight * x + y + bias = logit(threshold).
  xs = np.linspace(np.min(network_logits), np.max(network_logits), 50)
  boundary = np.log(threshold / (1 - threshold))
  axis.plot(xs, boundary - bias - network_weight * xs, 'k--',
            label=f'fused threshold {threshold:.3f}')
  margin = 0.05 * (np.max(lbp_logits) - np.min(lbp_logits))
  axis.set_ylim(np.min(lbp_logits) - margin, np.max(lbp_logits) + margin)
  axis.set_xlabel('network: logit of the same-person probability')
  axis.set_ylabel('LBP descriptors: weighted cosines (fused logit units)')
  axis.set_title(title or 'the scores the fusion combines')
  axis.legend(fontsize=8, loc='upper left')
  return _save(figure, path)


def verified_pair(photos: Sequence[np.ndarray], faces: Sequence,
                  network_inputs: Sequence[np.ndarray],
                  result: Mapping, path: str) -> str:
  """Each photo with its detected faces boxed and the used face's landmarks, beside the crop the
  network saw; the probability, threshold and decision above.

  Args:
    photos: the two uint8 (H, W, 3) photos as read.
    faces: their detection/align.AlignedFace framings.
    network_inputs: uint8 (h, w, C) images the network was given.
    result: inference.Verifier.verify's output.
    path: where to write the PNG.
  """
  figure, axes = plt.subplots(2, 2, figsize=(7.5, 6.5), width_ratios=(2.2, 1), squeeze=False)
  for row, (photo, face, crop) in enumerate(zip(photos, faces, network_inputs)):
    photo_axis, crop_axis = axes[row]
    photo_axis.imshow(photo)
    for index, found in enumerate(face.faces):
      x1, y1, x2, y2 = found.box
      used = index == face.face_index
      photo_axis.add_patch(matplotlib.patches.Rectangle(
          (x1, y1), x2 - x1, y2 - y1, fill=False, linewidth=2 if used else 1,
          edgecolor=_SAME_COLOUR if used else '#999999'))
      if used:
        photo_axis.plot(found.landmarks[:, 0], found.landmarks[:, 1], 'o', markersize=3,
                        color='#ffd92f', markeredgecolor='black', markeredgewidth=0.5)
    label = {'aligned': f'{len(face.faces)} face(s); face {face.face_index} aligned',
             'center': 'no face found: centre crop', 'as given': 'taken as given (--aligned)'}
    photo_axis.set_title(label[face.framing] + (' (small: unreliable)' if face.small else ''),
                         fontsize=8)
    crop_axis.imshow(crop[..., 0] if crop.shape[-1] == 1 else crop, cmap='gray', vmin=0,
                     vmax=255)
    crop_axis.set_title('the network sees', fontsize=8)
    for axis in (photo_axis, crop_axis):
      axis.set_xticks([])
      axis.set_yticks([])
  decision = 'same person' if result['same'] else 'different people'
  figure.suptitle(f'{decision}: p = {result["probability"]:.3f} (threshold '
                  f'{result["threshold"]:.3f})', fontsize=11,
                  color=_SAME_COLOUR if result['same'] else _DIFFERENT_COLOUR)
  return _save(figure, path)
