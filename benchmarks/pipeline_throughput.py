"""Input pipeline speed: pairs/s delivered from a warm cache, and decoding View 1 from cold.

  LFW_DIR=../shared/lfw python benchmarks/pipeline_throughput.py [--epochs 20] [--batch 64]
      [--tfds_dir DIR] [--train_configs tiny,default] [--train_steps 5]

For 250x250 grayscale (the reference's input) and each compared config's preprocessing it times:
decoding and caching View 1 (pairsDevTrain + pairsDevTest) with an empty cache, loading it again
from the disk cache, and pair_batches' uint8 batches per second with the images in memory, beside
a copy ceiling: the same bytes per batch copied in order (`images[i:i + B].copy()`), which no
shuffled gather can beat. To compare, it times the real training step of each config in
--train_configs on synthetic data (compile apart, median of the steps) and prints the
pipeline/training ratios. Prints a table and, as its last line, one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import epoch_time  # benchmarks/, this script's own folder.
from lfw_siamese import train_step
from lfw_siamese.configs import base
from lfw_siamese.data import images as images_lib
from lfw_siamese.data import loading
from lfw_siamese.data import samplers
from lfw_siamese.data import tfds_lfw
from lfw_siamese.data.lists import LfwDataError


def time_view1(data_config, epochs: int, batch_size: int) -> dict:
  """Cold decode+cache of View 1, reload from the disk cache, warm pairs/s and the copy ceiling."""
  loading.clear_memory_cache()
  started = time.perf_counter()
  train = loading.load_pairs(data_config, 'view1_train')
  loading.load_pairs(data_config, 'view1_test')
  cold_s = time.perf_counter() - started
  loading.clear_memory_cache()
  started = time.perf_counter()
  train = loading.load_pairs(data_config, 'view1_train')
  loading.load_pairs(data_config, 'view1_test')
  disk_s = time.perf_counter() - started
  pipeline_rate = median_pairs_per_s(epochs, lambda epoch: (
      len(batch['labels'])
      for batch in samplers.pair_batches(train, batch_size, seed=0, epoch=epoch)))
  # The copy ceiling: a batch's bytes copied in order, with no gather.
  images = train.images
  copy_rate = median_pairs_per_s(epochs, lambda _: (
      len(images[start:start + batch_size].copy())
      for start in range(0, len(images) - batch_size + 1, batch_size)))
  return {'shape': list(images.shape[2:]), 'cold_decode_view1_s': round(cold_s, 2),
          'disk_cache_view1_s': round(disk_s, 2), 'pairs_per_s': round(pipeline_rate, 1),
          'copy_ceiling_pairs_per_s': round(copy_rate, 1)}


def median_pairs_per_s(epochs: int, epoch_batch_sizes) -> float:
  """Median over epochs of pairs/s, where epoch_batch_sizes(epoch) yields each batch's size."""
  rates = []
  for epoch in range(epochs):
    started = time.perf_counter()
    delivered = sum(epoch_batch_sizes(epoch))
    rates.append(delivered / (time.perf_counter() - started))
  return statistics.median(rates)


def time_training(config_name: str, steps: int) -> dict:
  """Median seconds of the real training step of a config, on synthetic batches of its shape."""
  import importlib  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from lfw_siamese.model import networks  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'lfw_siamese.configs.{config_name}').get_config()
  shape = images_lib.image_shape(config.data)
  model = networks.build(config.model)
  tx = train_step.make_optimizer(config, steps_per_epoch=10)
  state = train_step.create_state(model, tx, shape, jax.random.key(0))
  step = jax.jit(train_step.make_train_step(model, tx, config))
  rng = np.random.default_rng(0)
  batch = epoch_time.synthetic_batch(config, config.batch_size, shape, rng)
  # Identity batches hold single images: as many as batch_size / 2 pairs.
  pairs_per_step = config.batch_size if config.loss == 'bce' else config.batch_size // 2
  key = jax.random.key(1)
  started = time.perf_counter()
  state, metrics = step(state, batch, key)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - started
  times = []
  for _ in range(steps):
    started = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - started)
  step_s = statistics.median(times)
  return {'shape': list(shape), 'batch': config.batch_size, 'compile_s': round(compile_s, 2),
          'step_s': round(step_s, 4), 'pairs_per_s': round(pairs_per_step / step_s, 1)}


def config_data(name: str):
  """config.data of lfw_siamese/configs/<name>.py."""
  import importlib  # pylint: disable=g-import-not-at-top
  return importlib.import_module(f'lfw_siamese.configs.{name}').get_config().data


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--lfw_dir', default='', help='LFW folder (default: $LFW_DIR)')
  parser.add_argument('--tfds_dir', default='', help='default: $TFDS_DATA_DIR, else '
                      '~/tensorflow_datasets')
  parser.add_argument('--epochs', type=int, default=20)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--train_configs', default='tiny,default',
                      help='configs whose training step to time for the ratio ("" for none)')
  parser.add_argument('--train_steps', type=int, default=5)
  args = parser.parse_args(argv)

  train_configs = [name for name in args.train_configs.split(',') if name]
  pipelines = {'gray250': base.get_config().data}
  pipelines['gray250'].update(color='grayscale', crop=0, image_size=250)
  for name in train_configs or ['default']:
    pipelines[name] = config_data(name)
  results = {'batch': args.batch, 'cpus': len(os.sched_getaffinity(0)), 'pipeline': {}}
  with tempfile.TemporaryDirectory() as cache:
    try:
      for name, data_config in pipelines.items():
        data_config.update(lfw_dir=args.lfw_dir, tfds_dir=args.tfds_dir, cache_dir=cache)
      started = time.perf_counter()
      tfds_lfw.prepare(pipelines['gray250'], kinds=('pairs',))
      results['prepare_s'] = round(time.perf_counter() - started, 2)
      for name, data_config in pipelines.items():
        results['pipeline'][name] = time_view1(data_config, args.epochs, args.batch)
    except LfwDataError as error:
      print(f'error: {error}', file=sys.stderr)
      return 2
    finally:
      loading.clear_memory_cache()
  results['training'] = {name: time_training(name, args.train_steps) for name in train_configs}
  pipeline, training = results['pipeline'], results['training']
  if training:
    fastest = max(training, key=lambda n: training[n]['pairs_per_s'])
    results['fastest_training_config'] = fastest
    results['gray250_over_fastest_training'] = round(
        pipeline['gray250']['pairs_per_s'] / training[fastest]['pairs_per_s'], 1)
    results['gray250_copy_ceiling_over_fastest_training'] = round(
        pipeline['gray250']['copy_ceiling_pairs_per_s'] / training[fastest]['pairs_per_s'], 1)
    results['own_shape_over_training'] = {
        name: round(pipeline[name]['pairs_per_s'] / training[name]['pairs_per_s'], 1)
        for name in training}

  rows = [('what', 'shape', 'cold View 1 s', 'disk cache s', 'pairs/s', 'copy ceiling pairs/s')]
  for name, r in pipeline.items():
    rows.append((f'pipeline {name}', 'x'.join(map(str, r['shape'])),
                 str(r['cold_decode_view1_s']), str(r['disk_cache_view1_s']),
                 str(r['pairs_per_s']), str(r['copy_ceiling_pairs_per_s'])))
  for name, r in training.items():
    rows.append((f'training {name} (batch {r["batch"]})', 'x'.join(map(str, r['shape'])), '', '',
                 str(r['pairs_per_s']), ''))
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  for row in rows:
    print('  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                    enumerate(zip(row, widths))))
  print(json.dumps(results))
  return 0


if __name__ == '__main__':
  sys.exit(main())
