"""`python -m lfw_siamese.data info|export`: what the LFW TFDS datasets hold; a portable copy.

`info` prepares the datasets and prints a table, then, as its last line, one JSON object
(view1_train, view1_test, view2_folds, same_pairs_view1_train, people_disjoint_view1,
people_disjoint_view2, variant, images, ...), every number counted from the prepared data.

`export --config CONFIG --output FILE` writes the pairs and people of View 1 and of the View 2
folds, preprocessed as CONFIG's data fields say, into one compressed file (data/bundle.py); a run
with `--config.data.bundle=FILE` then needs neither TFDS nor the LFW folder.
"""

import argparse
import itertools
import json
import sys
import time

from lfw_siamese import config_check
from lfw_siamese.data import bundle
from lfw_siamese.data import images
from lfw_siamese.data import lists
from lfw_siamese.data import loading
from lfw_siamese.data import sources
from lfw_siamese.data import tfds_lfw
from lfw_siamese.data.lists import LfwDataError


def summarize(data_config) -> dict:
  """Prepares both builders for data_config and counts what each split holds."""
  started = time.perf_counter()
  builders = tfds_lfw.prepare(data_config)
  prepare_s = time.perf_counter() - started
  pair_splits = {split: tfds_lfw.read_split(builders['pairs'], split)
                 for split in lists.PAIR_SPLITS}
  people_splits = {split: tfds_lfw.read_split(builders['people'], split)
                   for split in lists.PAIR_SPLITS}
  pair_people = {split: {e[f'name{side}'] for e in examples for side in (1, 2)}
                 for split, examples in pair_splits.items()}
  identity_people = {split: {e['name'] for e in examples}
                     for split, examples in people_splits.items()}
  folds = [f'fold{k}' for k in range(lists.NUM_FOLDS)]
  rows = []
  for split, examples in pair_splits.items():
    same = sum(e['label'] for e in examples)
    images = {(e[f'name{side}'], e[f'number{side}']) for e in examples for side in (1, 2)}
    rows.append({'split': split, 'pairs': len(examples), 'same': same,
                 'different': len(examples) - same, 'people': len(pair_people[split]),
                 'images': len(images), 'identity_people': len(identity_people[split]),
                 'identity_images': len(people_splits[split])})
  pair_images = {(e[f'name{side}'], e[f'number{side}'])
                 for examples in pair_splits.values() for e in examples for side in (1, 2)}
  return {
      'variant': data_config.variant,
      'view1_train': len(pair_splits['view1_train']),
      'view1_test': len(pair_splits['view1_test']),
      'view2_folds': [len(pair_splits[fold]) for fold in folds],
      'same_pairs_view1_train': rows[0]['same'],
      'same_pairs_view1_test': rows[1]['same'],
      'same_pairs_view2_folds': [row['same'] for row in rows[2:]],
      'people_disjoint_view1': _disjoint([pair_people['view1_train'], pair_people['view1_test']]),
      'people_disjoint_view2': _disjoint([pair_people[fold] for fold in folds]),
      'identity_people_disjoint_view1': _disjoint(
          [identity_people['view1_train'], identity_people['view1_test']]),
      'identity_people_disjoint_view2': _disjoint([identity_people[fold] for fold in folds]),
      'images': len(people_splits['view1_train']) + len(people_splits['view1_test']),
      'people': len(identity_people['view1_train'] | identity_people['view1_test']),
      'pair_images': len(pair_images),
      'people_lists': builders['people'].info.metadata.get('people_lists', ''),
      'channels': builders['pairs'].channels,
      'tfds_dir': str(sources.tfds_data_dir(data_config.tfds_dir)),
      'prepare_s': round(prepare_s, 2),
      'splits': rows,
  }


def format_table(summary: dict) -> str:
  """The per-split counts as an aligned text table."""
  columns = ('split', 'pairs', 'same', 'different', 'people', 'images', 'identity_people',
             'identity_images')
  lines = [columns] + [tuple(str(row[c]) for c in columns) for row in summary['splits']]
  widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
  text = ['  '.join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                    enumerate(zip(line, widths))) for line in lines]
  text.insert(1, '  '.join('-' * w for w in widths))
  flags = (f"LFW {summary['variant']} ({summary['channels']} channel(s)): {summary['images']} "
           f"images of {summary['people']} people; {summary['pair_images']} distinct images in "
           f"the pair lists; people disjoint: View 1 {summary['people_disjoint_view1']}, View 2 "
           f"folds {summary['people_disjoint_view2']}; people lists "
           f"{summary['people_lists']}; prepared in {summary['tfds_dir']}")
  return '\n'.join(text + [flags])


def _disjoint(groups) -> bool:
  return all(not (a & b) for a, b in itertools.combinations(groups, 2))


EXPORT_SPLITS = {'view1': ('view1_train', 'view1_test'),
                 'view2': tuple(f'fold{k}' for k in range(lists.NUM_FOLDS))}


def export(data_config, output: str, protocols, *, with_people: bool = True) -> dict:
  """Writes the pairs (and people) of the protocols' splits to a bundle; returns what it holds."""
  started = time.perf_counter()
  splits = [split for protocol in protocols for split in EXPORT_SPLITS[protocol]]
  pairs = {split: loading.load_pairs(data_config, split) for split in splits}
  people = {split: loading.load_identities(data_config, split)
            for split in (splits if with_people else ())}
  preprocessing = images.preprocessing(data_config).key()
  written = bundle.write(output, preprocessing=preprocessing, variant=data_config.variant,
                         pairs=pairs, people=people)
  return {'output': output, 'splits': splits, 'preprocessing': preprocessing,
          'variant': data_config.variant,
          'pairs': sum(map(len, pairs.values())), 'people_images': sum(map(len, people.values())),
          'images': written['images'], 'mib': round(written['bytes'] / 2**20, 1),
          'seconds': round(time.perf_counter() - started, 1)}


def _config_data(path: str):
  """config.data of a config file's get_config(); the reference's without one."""
  return (config_check.load_file(path) if path else config_check.defaults()).data


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m lfw_siamese.data', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('command', choices=['info', 'export'])
  parser.add_argument('--variant', default='', choices=[''] + list(sources.VARIANTS),
                      help="default: the config's (export), deepfunneled (info)")
  parser.add_argument('--lfw_dir', default='', help='LFW folder (default: $LFW_DIR)')
  parser.add_argument('--tfds_dir', default='',
                      help='TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)')
  parser.add_argument('--config', default='',
                      help="export: the config file whose preprocessing to apply (default: the "
                      "reference's, 250x250 grayscale)")
  parser.add_argument('--output', default='', help='export: the bundle file to write (.npz)')
  parser.add_argument('--protocol', default='both', choices=['view1', 'view2', 'both'],
                      help='export: the splits to include')
  parser.add_argument('--pairs_only', action='store_true',
                      help='export: only the pair lists\' images (enough for the restricted '
                      'paradigm; a smaller file)')
  args = parser.parse_args(argv)
  if args.command == 'export' and not args.output:
    parser.error('export needs --output FILE')
  try:
    data_config = _config_data(args.config if args.command == 'export' else '')
    data_config.lfw_dir, data_config.tfds_dir, data_config.bundle = (
        args.lfw_dir, args.tfds_dir, '')
    data_config.variant = args.variant or data_config.variant
    if args.command == 'export':
      protocols = ('view1', 'view2') if args.protocol == 'both' else (args.protocol,)
      result = export(data_config, args.output, protocols, with_people=not args.pairs_only)
      print(f"wrote {result['output']}: {result['images']} images "
            f"({result['preprocessing']}, {result['variant']}), {result['pairs']} pairs and "
            f"{result['people_images']} identity images of {len(result['splits'])} splits, "
            f"{result['mib']} MiB, in {result['seconds']} s")
      print(json.dumps(result))
      return 0
    summary = summarize(data_config)
  except (LfwDataError, config_check.ConfigError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  print(format_table(summary))
  print(json.dumps({k: v for k, v in summary.items() if k != 'splits'}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
