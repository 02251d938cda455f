"""Real LFW (LFW_DIR, as in CI): the protocol's counts, disjoint people, images that decode."""

import numpy as np
import pytest

from conftest import data_config
from lfw_siamese.data import cli as data
from lfw_siamese.data import loading
from lfw_siamese.data import samplers
from lfw_siamese.data import sources
from lfw_siamese.data import tfds_lfw

pytestmark = pytest.mark.slow  # The real LFW, prepared once: make test-fast skips it.


@pytest.fixture(scope='module')
def summary(real_lfw_dir, _real_tfds_dir):
  """What `python -m lfw_siamese.data info` reports, counted from the prepared data."""
  return data.summarize(data_config(lfw_dir=str(real_lfw_dir), tfds_dir=_real_tfds_dir))


def test_view1_counts(summary):
  assert summary['view1_train'] == 2200 and summary['same_pairs_view1_train'] == 1100
  assert summary['view1_test'] == 1000 and summary['same_pairs_view1_test'] == 500


def test_view2_has_ten_folds_of_600(summary):
  assert summary['view2_folds'] == [600] * 10
  assert summary['same_pairs_view2_folds'] == [300] * 10


def test_people_are_disjoint(summary):
  assert summary['people_disjoint_view1'] and summary['people_disjoint_view2']
  assert summary['identity_people_disjoint_view1'] and summary['identity_people_disjoint_view2']
  rows = {row['split']: row for row in summary['splits']}
  assert rows['view1_train']['people'] == 2132 and rows['view1_test']['people'] == 963


def test_every_image_is_there(summary):
  assert summary['images'] == 13233 and summary['people'] == 5749
  assert summary['pair_images'] == 9056


@pytest.mark.parametrize('split', ['view1_train', 'view1_test', 'fold0', 'fold9'])
def test_images_decode_to_250x250(real_data_config, split):
  builder = tfds_lfw.builder('pairs', real_data_config)
  source = builder.as_data_source(split)
  for index in (0, len(source) // 2, len(source) - 1):
    example = source[index]
    for key in ('image1', 'image2'):
      assert example[key].shape == (250, 250, 3) and example[key].dtype == np.uint8
  people = tfds_lfw.builder('people', real_data_config).as_data_source(split)
  assert people[len(people) - 1]['image'].shape == (250, 250, 3)


def test_stored_bytes_are_the_upstream_files(real_data_config, real_lfw_dir):
  builder = tfds_lfw.builder('pairs', real_data_config)
  example = tfds_lfw.read_split(builder, 'fold5')[123]
  image = sources.FolderImages(real_lfw_dir / 'lfw-deepfunneled')
  assert example['image1'] == image.read(example['name1'], example['number1'])


def test_view1_test_pairs_through_the_pipeline(real_data_config):
  real_data_config.update(crop=120, image_size=32)
  pairs = loading.load_pairs(real_data_config, 'view1_test')
  assert pairs.images.shape == (1000, 2, 32, 32, 1)
  assert pairs.labels.sum() == 500
  batch = next(samplers.pair_batches(pairs, 64, seed=0, epoch=0))
  assert batch['images'].shape == (64, 2, 32, 32, 1) and batch['images'].dtype == np.uint8
  assert batch['images'].std() > 0.05 * 255
