"""The input pipeline on fake LFW: preprocessing, caches, splits, shuffling, batches, sharding."""

import collections
import io

import numpy as np
import pytest
from PIL import Image

import fake_lfw as fake_lfw_lib
from conftest import data_config
from lfw_siamese import config_check
from lfw_siamese.configs import base
from lfw_siamese.data import datasets
from lfw_siamese.data import images as images_lib
from lfw_siamese.data import lists
from lfw_siamese.data import loading
from lfw_siamese.data import samplers
from lfw_siamese.data.lists import LfwDataError


def training_config(fake_data_config, **data_overrides):
  config = base.get_config()
  config.data = fake_data_config
  config.data.update(data_overrides)
  return config


@pytest.mark.parametrize('color,crop,size,shape', [
    ('grayscale', 0, 250, (250, 250, 1)), ('rgb', 120, 64, (64, 64, 3)),
    ('grayscale', 150, 105, (105, 105, 1))])
def test_image_shape(color, crop, size, shape):
  assert images_lib.image_shape(data_config(color=color, crop=crop, image_size=size)) == shape


def test_preprocess_is_crop_then_antialiased_resize_then_luma():
  rgb = np.asarray(fake_lfw_lib.face_image(3, 1))
  config = data_config(color='grayscale', crop=120, image_size=64)
  expected = Image.fromarray(rgb).crop((65, 65, 185, 185)).resize(
      (64, 64), Image.Resampling.LANCZOS).convert('L')
  out = images_lib.preprocess(rgb, config)
  assert out.shape == (64, 64, 1) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[..., 0], np.asarray(expected))
  whole = images_lib.preprocess(rgb, data_config(color='rgb', crop=0, image_size=250))
  np.testing.assert_array_equal(whole, rgb)


def test_preprocess_accepts_any_layout_and_size():
  gray = np.asarray(fake_lfw_lib.face_image(1, 1, grayscale=True))
  config = data_config(color='rgb', crop=150, image_size=32)
  from_2d = images_lib.preprocess(gray, config)
  assert from_2d.shape == (32, 32, 3)
  np.testing.assert_array_equal(from_2d, images_lib.preprocess(gray[..., None], config))
  rgba = np.dstack([np.asarray(fake_lfw_lib.face_image(1, 1))] + [np.full((250, 250), 255,
                                                                          np.uint8)])
  assert images_lib.preprocess(rgba, config).shape == (32, 32, 3)
  # A 500x600 photo is cropped in proportion to its shorter side: same face region as 250x250.
  big = np.asarray(fake_lfw_lib.face_image(2, 1).resize((500, 500), Image.Resampling.LANCZOS))
  padded = np.pad(big, ((50, 50), (0, 0), (0, 0)))
  small = images_lib.preprocess(np.asarray(fake_lfw_lib.face_image(2, 1)), config).astype(int)
  assert np.abs(images_lib.preprocess(padded, config).astype(int) - small).mean() < 3


@pytest.mark.parametrize('bad', [np.zeros((8, 8), np.float32), np.zeros((8, 8, 2), np.uint8),
                                 np.zeros(8, np.uint8)])
def test_preprocess_rejects_non_images(bad):
  with pytest.raises(ValueError, match='image: expected a uint8'):
    images_lib.preprocess(bad, data_config())


@pytest.mark.parametrize('field,value,message', [
    ('color', 'sepia', r"config.data.color: expected one of \('grayscale', 'rgb'\)"),
    ('crop', 300, r'config.data.crop: expected a value in \[0, 250\]'),
    ('image_size', 0, 'config.data.image_size'),
    ('variant', 'lfw3d', r"config.data.variant: expected one of \('original', 'funneled'")])
def test_bad_data_config(fake_data_config, field, value, message):
  fake_data_config[field] = value
  with pytest.raises(config_check.ConfigError, match=message):
    loading.load_pairs(fake_data_config, 'view1_test')


def test_load_pairs_matches_the_list_and_the_files(fake_data_config, fake_lfw):
  fake_data_config.update(color='rgb', crop=150, image_size=48)
  pairs = loading.load_pairs(fake_data_config, 'fold1')
  listed = lists.read_pairs(fake_lfw / 'pairs.txt')[1]
  assert pairs.images.shape == (10, 2, 48, 48, 3) and pairs.images.dtype == np.uint8
  assert pairs.labels.dtype == np.int32 and pairs.numbers.dtype == np.int32
  np.testing.assert_array_equal(pairs.labels, [p.label for p in listed])
  np.testing.assert_array_equal(pairs.names, [[p.name1, p.name2] for p in listed])
  np.testing.assert_array_equal(pairs.numbers, [[p.number1, p.number2] for p in listed])
  last = listed[-1]
  decoded = np.asarray(Image.open(fake_lfw_lib.image_path(fake_lfw, 'deepfunneled', last.name2,
                                                          last.number2)))
  np.testing.assert_array_equal(pairs.images[-1, 1],
                                images_lib.preprocess(decoded, fake_data_config))


def test_decoded_once_then_memory_then_disk(fake_data_config, monkeypatch):
  fake_data_config.update(crop=100, image_size=20)
  first = loading.load_pairs(fake_data_config, 'view1_train')
  assert loading.load_pairs(fake_data_config, 'view1_train') is first
  with pytest.raises(ValueError):
    first.images[0, 0, 0, 0, 0] = 1  # The cached arrays are read-only.
  cached = list(loading.cache_dir(fake_data_config).glob(
      'v*/deepfunneled-grayscale-crop100-size20-*/pairs-view1_train.npz'))
  assert len(cached) == 1
  loading.clear_memory_cache()

  def no_decoding(*args, **kwargs):
    raise AssertionError('decoded again despite the disk cache')

  monkeypatch.setattr(images_lib, 'decode_many', no_decoding)
  again = loading.load_pairs(fake_data_config, 'view1_train')
  assert again is not first
  np.testing.assert_array_equal(again.images, first.images)
  fake_data_config.image_size = 21  # Other preprocessing: a new cache entry, decoded anew.
  with pytest.raises(AssertionError, match='decoded again'):
    loading.load_pairs(fake_data_config, 'view1_train')


def test_stored_channels_are_checked_when_decoding():
  jpeg = fake_lfw_lib.face_image(0, 1, grayscale=True)
  buffer = io.BytesIO()
  jpeg.save(buffer, 'JPEG')
  settings = images_lib.preprocessing(data_config())
  with pytest.raises(LfwDataError, match='x_0001: stored image is mode L, but the dataset '
                                         r'declares 3 channel\(s\)'):
    images_lib.decode_many([buffer.getvalue()], settings, 3, names=['x_0001'])


def test_grayscale_lfwa_archive_through_the_pipeline(tmp_path):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw', variant='lfwa', grayscale=True,
                                    archive=True)
  config = data_config(lfw_dir=str(root), tfds_dir=str(tmp_path / 'tfds'), variant='lfwa',
                       color='rgb', crop=0, image_size=40)
  pairs = loading.load_pairs(config, 'view1_test')
  assert pairs.images.shape == (20, 2, 40, 40, 3)
  np.testing.assert_array_equal(pairs.images[..., 0], pairs.images[..., 2])  # Gray as RGB.


def pair_keys(pairs):
  """Each pair as (name1, number1, name2, number2, label), a multiset key."""
  return collections.Counter(
      (n[0], int(m[0]), n[1], int(m[1]), int(label))
      for n, m, label in zip(pairs.names, pairs.numbers, pairs.labels))


def test_view1_restricted_split_is_seeded(fake_data_config):
  config = training_config(fake_data_config, crop=150, image_size=16, validation_fraction=0.1)
  data = loading.training_data(config)
  full = loading.load_pairs(config.data, 'view1_train')
  assert (len(data.train), len(data.validation), len(data.test)) == (36, 4, 20)
  assert pair_keys(data.train) + pair_keys(data.validation) == pair_keys(full)
  assert pair_keys(data.test) == pair_keys(loading.load_pairs(config.data, 'view1_test'))
  again = loading.training_data(config)
  np.testing.assert_array_equal(again.validation.names, data.validation.names)
  config.seed = 1
  other = loading.training_data(config)
  assert not np.array_equal(other.validation.names, data.validation.names)


@pytest.mark.parametrize('fold', [0, 9])
def test_view2_trains_on_the_other_folds(fake_data_config, fold):
  config = training_config(fake_data_config, protocol='view2', fold=fold, crop=150,
                           image_size=16)
  data = loading.training_data(config)
  others = datasets.concatenate_pairs([loading.load_pairs(config.data, f'fold{k}')
                                 for k in range(10) if k != fold])
  assert len(data.train) + len(data.validation) == 90 and len(data.validation) == 2
  assert pair_keys(data.train) + pair_keys(data.validation) == pair_keys(others)
  assert pair_keys(data.test) == pair_keys(loading.load_pairs(config.data, f'fold{fold}'))
  assert not set(data.test.names.ravel()) & set(data.train.names.ravel())


def test_unrestricted_holds_out_whole_people(fake_data_config):
  config = training_config(fake_data_config, paradigm='unrestricted', crop=150, image_size=16,
                           validation_fraction=0.2)
  data = loading.training_data(config)
  plan = fake_lfw_lib.plan_people(30)
  assert isinstance(data.train, datasets.IdentitySet)
  train_people = set(data.train.names)
  validation_people = set(data.validation.names.ravel())
  assert train_people | validation_people <= set(plan.dev_train_people)
  assert not train_people & validation_people
  assert not (train_people | validation_people) & set(data.test.names.ravel())
  assert len(validation_people) >= 2 and 0 < data.validation.labels.sum() < len(data.validation)
  assert data.train.person_ids.max() + 1 == len(train_people)
  again = loading.training_data(config)
  np.testing.assert_array_equal(again.validation.names, data.validation.names)
  train, held_out = loading.unrestricted_people(config)
  np.testing.assert_array_equal(train.names, data.train.names)
  assert validation_people <= set(held_out.names) and not set(held_out.names) & train_people


def test_load_identities_follows_people_lists(fake_data_config):
  fake_data_config.update(crop=150, image_size=16)
  plan = fake_lfw_lib.plan_people(30)
  identities = loading.load_identities(fake_data_config, 'fold3')
  expected = [(name, n) for name in plan.fold_people[3] for n in range(1, plan.counts[name] + 1)]
  assert list(zip(identities.names, identities.numbers)) == expected
  assert identities.images.shape == (len(expected), 16, 16, 1)
  for name in plan.fold_people[3]:  # One dense id per person.
    assert len(set(identities.person_ids[identities.names == name])) == 1
  assert identities.num_people == len(plan.fold_people[3])


def test_bad_split_and_protocol(fake_data_config):
  with pytest.raises(LfwDataError, match="split: expected one of view1_train, view1_test, fold0"):
    loading.load_pairs(fake_data_config, 'fold10')
  config = training_config(fake_data_config, protocol='view3')
  with pytest.raises(config_check.ConfigError,
                     match=r"config.data.protocol: expected one of \('view1', 'view2'\)"):
    loading.training_data(config)
  config = training_config(fake_data_config, protocol='view2', fold=10)
  with pytest.raises(config_check.ConfigError,
                     match=r'config.data.fold: expected a value in \[0, 9\], got 10'):
    loading.training_data(config)


def synthetic_pairs(num_pairs=50, side=4):
  """Pairs whose images encode their index, to follow them through batching."""
  images = np.zeros((num_pairs, 2, side, side, 1), np.uint8)
  images[:, 0] = (np.arange(num_pairs) % 256)[:, None, None, None]
  images[:, 1] = 255
  return datasets.PairSet(images, (np.arange(num_pairs) % 2).astype(np.int32),
                    np.array([['a', 'b']] * num_pairs), np.ones((num_pairs, 2), np.int32))


def batch_indices(batches):
  return [b['images'][:, 0, 0, 0, 0].astype(int) for b in batches]


def test_pair_batches_shapes_values_and_coverage():
  pairs = synthetic_pairs()
  batches = list(samplers.pair_batches(pairs, 16, seed=0, epoch=0))
  assert len(batches) == 3
  for batch in batches:
    assert batch['images'].shape == (16, 2, 4, 4, 1) and batch['images'].dtype == np.uint8
    assert batch['labels'].shape == (16,) and batch['labels'].dtype == np.int32
    assert batch['images'].max() == 255
    np.testing.assert_array_equal(batch['labels'], batch_indices([batch])[0] % 2)
  seen = np.concatenate(batch_indices(batches))
  assert len(set(seen)) == 48
  everything = list(samplers.pair_batches(pairs, 16, seed=0, epoch=0, drop_remainder=False))
  assert [len(b['labels']) for b in everything] == [16, 16, 16, 2]
  assert sorted(np.concatenate(batch_indices(everything))) == list(range(50))
  in_order = list(samplers.pair_batches(pairs, 16, seed=0, epoch=0, shuffle=False))
  assert list(np.concatenate(batch_indices(in_order))) == list(range(48))


@pytest.mark.parametrize('layout', ['contiguous', 'strided'])
def test_gather_rows_equals_fancy_indexing(layout):
  images = np.random.default_rng(0).integers(0, 256, (9, 2, 5, 3, 2), dtype=np.uint8)
  if layout == 'strided':
    images = images[:, :, ::2]
  rows = np.array([4, 0, 4, 8])
  gathered = samplers.gather_rows(images, rows)
  assert gathered.shape == (4,) + images.shape[1:]
  np.testing.assert_array_equal(gathered, images[rows])
  assert samplers.gather_rows(images, rows[:0]).shape == (0,) + images.shape[1:]


def test_shuffling_depends_only_on_seed_and_epoch():
  pairs = synthetic_pairs()
  order = lambda seed, epoch: np.concatenate(
      batch_indices(samplers.pair_batches(pairs, 10, seed=seed, epoch=epoch)))
  np.testing.assert_array_equal(order(0, 3), order(0, 3))
  assert not np.array_equal(order(0, 3), order(0, 4))
  assert not np.array_equal(order(0, 3), order(1, 3))


@pytest.mark.parametrize('process_count', [2, 4])
def test_each_process_gets_its_slice_of_every_global_batch(process_count):
  pairs = synthetic_pairs(64)
  whole = batch_indices(samplers.pair_batches(pairs, 16, seed=5, epoch=2))
  shares = [batch_indices(samplers.pair_batches(pairs, 16, seed=5, epoch=2, process_index=i,
                                          process_count=process_count))
            for i in range(process_count)]
  for step, global_batch in enumerate(whole):
    assert all(len(share[step]) == 16 // process_count for share in shares)
    np.testing.assert_array_equal(np.concatenate([share[step] for share in shares]), global_batch)
  with pytest.raises(ValueError, match='multiple of process_count'):
    next(samplers.pair_batches(pairs, 15, seed=0, epoch=0, process_count=2))


def synthetic_identities(counts=(1, 2, 3, 5, 1, 4, 2, 2)):
  names = np.array([f'P{p}' for p, c in enumerate(counts) for _ in range(c)])
  numbers = np.array([n + 1 for c in counts for n in range(c)], np.int32)
  person = np.array([p for p, c in enumerate(counts) for _ in range(c)])
  images = np.zeros((len(names), 2, 2, 1), np.uint8)
  images[:, 0, 0, 0] = person * 10 + numbers  # Encodes person and number.
  return datasets.identity_set(images, names, numbers)


def test_identity_pair_set_is_balanced_correct_and_seeded():
  identities = synthetic_identities()
  pairs = samplers.identity_pair_set(identities, 101, seed=0, epoch=0)
  assert len(pairs) == 101 and pairs.labels.sum() == 50
  np.testing.assert_array_equal(pairs.labels, pairs.names[:, 0] == pairs.names[:, 1])
  same = pairs.labels == 1
  assert np.all(pairs.numbers[same, 0] != pairs.numbers[same, 1])  # Two different images.
  codes = pairs.images[:, :, 0, 0, 0].astype(int)
  persons = np.char.lstrip(pairs.names, 'P').astype(int)
  np.testing.assert_array_equal(codes, persons * 10 + pairs.numbers)
  again = samplers.identity_pair_set(identities, 101, seed=0, epoch=0)
  np.testing.assert_array_equal(again.names, pairs.names)
  other = samplers.identity_pair_set(identities, 101, seed=0, epoch=1)
  assert not np.array_equal(other.names, pairs.names)
  rows, labels = samplers.identity_pair_rows(identities.person_ids, 101, seed=0, epoch=0)
  np.testing.assert_array_equal(identities.names[rows], pairs.names)
  np.testing.assert_array_equal(labels, pairs.labels)


def test_identity_batches_add_one_image_people_as_negatives():
  identities = synthetic_identities()
  counts = np.bincount(identities.person_ids)
  batches = list(samplers.identity_batches(identities, 6, seed=0, epoch=0, singles_per_batch=2))
  assert len(batches) == 3  # Still two people with several images per batch.
  singles = []
  for batch in batches:
    ids = batch['person_ids']
    assert ids.shape == (6,) and list(ids[:4:2]) == list(ids[1:4:2])
    assert all(counts[person] == 1 for person in ids[4:])
    singles.extend(ids[4:])
  assert set(singles) == set(np.flatnonzero(counts == 1))  # Cycled through, each one seen.
  again = list(samplers.identity_batches(identities, 6, seed=0, epoch=0, singles_per_batch=2))
  np.testing.assert_array_equal(np.concatenate([b['person_ids'] for b in again]),
                                np.concatenate([b['person_ids'] for b in batches]))
  with pytest.raises(ValueError, match='divide batch_size 6 less singles_per_batch 1'):
    next(samplers.identity_batches(identities, 6, seed=0, epoch=0, singles_per_batch=1))


@pytest.mark.parametrize('process_count', [1, 2])
def test_identity_batches_are_people_times_images(process_count):
  identities = synthetic_identities()
  k = 2
  whole = list(samplers.identity_batches(identities, 4, seed=0, epoch=0, images_per_person=k))
  assert len(whole) == 3  # Six people with two or more images, two per batch.
  seen = []
  for batch in whole:
    assert batch['images'].shape == (4, 2, 2, 1) and batch['images'].dtype == np.uint8
    ids = batch['person_ids']
    assert ids.shape == (4,) and list(ids[::2]) == list(ids[1::2]) and ids[0] != ids[2]
    seen.extend(ids[::2])
  assert len(set(seen)) == 6
  shares = [list(samplers.identity_batches(identities, 4, seed=0, epoch=0, images_per_person=k,
                                     process_index=i, process_count=process_count))
            for i in range(process_count)]
  for step, batch in enumerate(whole):
    np.testing.assert_array_equal(
        np.concatenate([share[step]['person_ids'] for share in shares]), batch['person_ids'])
    np.testing.assert_array_equal(
        np.concatenate([share[step]['images'] for share in shares]), batch['images'])
