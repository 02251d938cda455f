"""What the LBP metric (lbp_metric.py) learns best from: variants of its input, refitted on one workdir.

  LFW_DIR=/work/shared/lfw python experiments/metric_inputs.py --workdir runs/default \
      [--only seeds3 res128 ...] [--output metric_inputs.md]

For a workdir trained in the unrestricted paradigm, learns LBP descriptors from its training people
as fusion.py does (mirror-averaged histograms, PCA to 800 dimensions, within-class whitening),
trains the metric (config.lbp_fusion.metric of base.py) on each variant's input, and fits the
fusion of the network's logit, the variant's descriptor cosines and the metric's cosine on the
validation pairs. Variants: the default (the 10x10 and 6x6 grids at the model's resolution);
ensembles of 3 and 5 seeds (their cosines averaged); more grids in the metric's input; augmented
training rows (each training image's descriptors also from copies shifted by 2 pixels, or from the
plain and mirror images apart, one version drawn at random each time); the same two grids at 128
pixels (radii 2, 4, 6) instead of or beside them. Variants are ranked as fusion_candidates.py ranks
candidates, by the fused score's validation AUC under 10-fold cross-validation over the validation
pairs; the test columns are printed beside them, never used to choose.
"""

import argparse
import dataclasses
import time

import numpy as np

from fusion_candidates import fused_report
from fusion_candidates import write_table
from lfw_siamese import fusion
from lfw_siamese import inference
from lfw_siamese import input_pipeline
from lfw_siamese import lbp
from lfw_siamese import lbp_metric
from lfw_siamese import metrics
from lfw_siamese.configs import base

DIMS = 800  # As config.lbp_fusion.dims.
GRIDS = (10, 6, 8, 12, 4)  # At the model's resolution, radii 1, 2, 3.
HIGH_GRIDS = (10, 6)  # At 128 pixels, radii 2, 4, 6.
SHIFTS = ((0, 2), (0, -2), (2, 0), (-2, 0))
# Each Variant.versions: the kinds of extra training rows it adds.
EXTRA_ROWS = {'none': (), 'shift': ('shift',), 'views': ('views',), 'both': ('shift', 'views')}


@dataclasses.dataclass(frozen=True)
class Variant:
  inputs: tuple[str, ...]  # Descriptors the metric learns from.
  fused: tuple[str, ...] = ('lbp10', 'lbp6')  # Descriptors whose cosines are fused beside it.
  versions: str = 'none'  # Extra training rows: 'shift', 'views' (plain, mirror) or 'both'.
  seeds: int = 1  # Metrics trained; their cosines averaged.


VARIANTS = {
    'default': Variant(('lbp10', 'lbp6')),
    'no_metric': Variant((), seeds=0),
    'seeds3': Variant(('lbp10', 'lbp6'), seeds=3),
    'seeds5': Variant(('lbp10', 'lbp6'), seeds=5),
    'grid8': Variant(('lbp10', 'lbp6', 'lbp8')),
    'grids12_4': Variant(('lbp10', 'lbp6', 'lbp12', 'lbp4')),
    'grids8_12_4_fused': Variant(('lbp10', 'lbp6', 'lbp8', 'lbp12', 'lbp4'),
                                 fused=('lbp10', 'lbp6', 'lbp8', 'lbp12', 'lbp4')),
    'shifted_rows': Variant(('lbp10', 'lbp6'), versions='shift'),
    'plain_mirror_rows': Variant(('lbp10', 'lbp6'), versions='views'),
    'shifted_plain_mirror_rows': Variant(('lbp10', 'lbp6'), versions='both'),
    'res128': Variant(('lbp10_128px', 'lbp6_128px'), fused=('lbp10_128px', 'lbp6_128px')),
    'res64_128': Variant(('lbp10', 'lbp6', 'lbp10_128px', 'lbp6_128px')),
    'res64_128_fused': Variant(('lbp10', 'lbp6', 'lbp10_128px', 'lbp6_128px'),
                               fused=('lbp10', 'lbp6', 'lbp10_128px', 'lbp6_128px')),
}
# Training images, then each side of the validation pairs and of the test pairs.
SPLITS = ('train', 'va', 'vb', 'ta', 'tb')


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """The images moved by (dy, dx) pixels, their edges repeated into the gap."""
  pad = max(abs(dy), abs(dx))
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
  return padded[:, pad + dy:pad + dy + images.shape[1], pad + dx:pad + dx + images.shape[2]]


def split_images(data) -> dict[str, np.ndarray]:
  return {'train': data.train.images, 'va': data.validation.images[:, 0],
          'vb': data.validation.images[:, 1], 'ta': data.test.images[:, 0],
          'tb': data.test.images[:, 1]}


def histograms(data, data_128) -> tuple[dict, dict]:
  """{descriptor: {split: mirror-averaged histograms}} and {descriptor: [training versions]}."""
  features, versions = {}, {}
  for split, images in split_images(data).items():
    plain = lbp.histograms(images, radii=(1, 2, 3), grids=GRIDS)
    mirror = lbp.histograms(images[:, :, ::-1], radii=(1, 2, 3), grids=GRIDS)
    for grid, p, m in zip(GRIDS, plain, mirror):
      features.setdefault(f'lbp{grid}', {})[split] = (p + m) / 2
      if split == 'train' and grid in GRIDS[:2]:  # Only these take extra training rows.
        versions[f'lbp{grid}'] = {'views': [p, m]}
  for dy, dx in SHIFTS:
    moved = lbp.mirrored_histograms(shifted(data.train.images, dy, dx), radii=(1, 2, 3),
                                    grids=GRIDS[:2])
    for grid, h in zip(GRIDS[:2], moved):
      versions[f'lbp{grid}'].setdefault('shift', []).append(h)
  for split, images in split_images(data_128).items():
    for grid, h in zip(HIGH_GRIDS, lbp.mirrored_histograms(images, radii=(2, 4, 6),
                                                           grids=HIGH_GRIDS)):
      features.setdefault(f'lbp{grid}_128px', {})[split] = h
  return features, versions


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='a trained unrestricted workdir')
  parser.add_argument('--only', nargs='*', default=None, choices=list(VARIANTS),
                      help='these variants (default: all)')
  parser.add_argument('--output', default=None, help='also write the table here (markdown)')
  parser.add_argument('--dims', type=int, default=DIMS, help='PCA dimensions before whitening')
  parser.add_argument('--metric-steps', type=int, default=None,
                      help="the metric's training steps (default: base.py's)")
  parser.add_argument('--metric-width', type=int, default=None,
                      help="the metric's hidden units (default: base.py's)")
  args = parser.parse_args(argv)

  verifier = inference.load(args.workdir, with_fusion=False)
  data = input_pipeline.training_data(verifier.config)
  config_128 = verifier.config.copy_and_resolve_references()
  with config_128.unlocked():
    config_128.data.image_size = 128
  print('computing LBP histograms', flush=True)
  features, versions = histograms(data, input_pipeline.training_data(config_128))
  ids = data.train.person_ids
  descriptors = {name: lbp.LbpEmbedder((2, 4, 6) if name.endswith('128px') else (1, 2, 3),
                                       int(name[3:].split('_')[0]),
                                       *lbp.whitening(splits['train'], ids, args.dims))
                 for name, splits in features.items()}
  unit = {name: {split: descriptors[name].project(h) for split, h in splits.items()}
          for name, splits in features.items()}
  unit_versions = {name: {kind: [descriptors[name].project(h) for h in rows]
                          for kind, rows in kinds.items()} for name, kinds in versions.items()}
  network = [fusion.logit(verifier.score_pairs(pairs)) for pairs in (data.validation, data.test)]
  labels = data.validation.labels, data.test.labels
  settings = base.get_config().lbp_fusion.metric
  settings.steps = args.metric_steps or settings.steps
  settings.width = args.metric_width or settings.width

  lines = ['| variant | metric input | fused cosines | training rows | seeds | validation AUC '
           '(10-fold CV) | validation acc | test acc | test AUC | metric alone: test AUC | '
           'fit s |', '|---|---|---|---|---|---|---|---|---|---|---|']
  for name in args.only or VARIANTS:
    variant = VARIANTS[name]
    print(f'fitting {name}', flush=True)
    start = time.time()
    columns = [network] + [[np.sum(unit[d][a] * unit[d][b], axis=1) for a, b in
                            (('va', 'vb'), ('ta', 'tb'))] for d in variant.fused]
    metric_auc = ''
    if variant.seeds:
      inputs = {split: np.concatenate([unit[d][split] for d in variant.inputs], axis=1)
                for split in SPLITS}
      rows = [inputs['train']]
      for kind in EXTRA_ROWS[variant.versions]:
        rows += [np.concatenate(parts, axis=1) for parts in
                 zip(*(unit_versions[d][kind] for d in variant.inputs))]
      cosines = [np.zeros(len(labels[0])), np.zeros(len(labels[1]))]
      for seed in range(variant.seeds):
        metric = lbp_metric.fit(np.stack(rows), ids, settings, seed=seed)
        for i, (a, b) in enumerate((('va', 'vb'), ('ta', 'tb'))):
          cosines[i] += metric.cosines(inputs[a], inputs[b]) / variant.seeds
      columns.append(cosines)
      metric_auc = f'{metrics.roc_auc(cosines[1], labels[1]):.4f}'
    validation, test = (np.column_stack([column[i] for column in columns]) for i in (0, 1))
    auc, report = fused_report(validation, test, labels)
    lines.append(f"| {name} | {', '.join(variant.inputs) or '(none)'} | "
                 f"{', '.join(variant.fused)} | {variant.versions} | {variant.seeds} | "
                 f"{auc:.4f} | {report['val_acc']:.3f} | "
                 f"{report['test_acc']:.3f} | {report['test_auc']:.4f} | {metric_auc} | "
                 f"{time.time() - start:.0f} |")
    print(lines[-1], flush=True)
  write_table(lines, args.output)


if __name__ == '__main__':
  main()
