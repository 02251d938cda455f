"""A bundle (`python -m lfw_siamese.data export`) gives the same data as TFDS, without TFDS."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from lfw_siamese.configs import base
from lfw_siamese.data import cli as data
from lfw_siamese.data import datasets
from lfw_siamese.data import loading
from lfw_siamese.data.lists import LfwDataError

REPO = pathlib.Path(__file__).parent.parent


def small_config(data_config, **data_overrides):
  """A full config reading the fake LFW at 32x32 from a 150-pixel crop."""
  config = base.get_config()
  config.data.update(data_config)
  config.data.update(crop=150, image_size=32, **data_overrides)
  return config


@pytest.fixture
def exported(fake_data_config, tmp_path):
  """(config, bundle path) of the fake LFW exported at the config's preprocessing."""
  config = small_config(fake_data_config)
  path = str(tmp_path / 'lfw32.npz')
  data.export(config.data, path, ('view1', 'view2'))
  return config, path


def assert_same_sets(left, right):
  for a, b in zip(datasets.arrays(left), datasets.arrays(right)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('protocol,fold,paradigm', [
    ('view1', 0, 'restricted'), ('view1', 0, 'unrestricted'), ('view2', 4, 'unrestricted')])
def test_bundle_gives_the_same_training_data(exported, protocol, fold, paradigm):
  config, path = exported
  config.data.update(protocol=protocol, fold=fold, paradigm=paradigm, validation_fraction=0.2)
  from_tfds = loading.training_data(config)
  config.data.bundle = path
  from_bundle = loading.training_data(config)
  for name in ('train', 'validation', 'test'):
    assert_same_sets(getattr(from_tfds, name), getattr(from_bundle, name))
  assert len(from_bundle.test) and len(from_bundle.validation)


def test_bundle_stores_each_image_once(exported):
  config, path = exported
  with np.load(path) as arrays:
    keys = set(zip(arrays['image_names'].tolist(), arrays['image_numbers'].tolist()))
    assert len(keys) == len(arrays['images']) == len(arrays['image_names'])
    people = set()
    for split in ('view1_train', 'view1_test'):
      people.update(zip(loading.load_identities(config.data, split).names.tolist(),
                        loading.load_identities(config.data, split).numbers.tolist()))
    assert keys == people  # Every image of the people lists; the pairs' are among them.


@pytest.mark.slow
def test_training_reads_a_bundle_without_tfds(exported, tmp_path):
  """A short training run in a process where importing tensorflow_datasets fails."""
  config, path = exported
  script = f"""
import sys
sys.modules['tensorflow_datasets'] = None  # Any import of TFDS raises ImportError.
from lfw_siamese import train
from lfw_siamese.configs import tiny
config = tiny.get_config()
config.data.update(bundle={path!r}, lfw_dir='/nonexistent', tfds_dir='/nonexistent')
config.num_epochs = 1
summary = train.train_and_evaluate(config, {str(tmp_path / 'run')!r})
print('test_acc', summary['test_acc'])
"""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'test_acc' in result.stdout


@pytest.mark.parametrize('change,message', [
    ({'image_size': 48}, "holds preprocessing 'grayscale-crop150-size32', but the config asks "
                         "for 'grayscale-crop150-size48'"),
    ({'crop': 120}, "holds preprocessing 'grayscale-crop150-size32', but the config asks "
                    "for 'grayscale-crop120-size32'"),
    ({'color': 'rgb'}, "holds preprocessing 'grayscale-crop150-size32', but the config asks "
                       "for 'rgb-crop150-size32'"),
    ({'variant': 'funneled'}, "holds variant 'deepfunneled'"),
])
def test_a_bundle_of_other_data_is_refused(exported, change, message):
  config, path = exported
  config.data.update(bundle=path, **change)
  with pytest.raises(LfwDataError, match=message) as error:
    loading.load_pairs(config.data, 'view1_test')
  assert path in str(error.value)


def test_missing_split_missing_file_and_foreign_file(fake_data_config, tmp_path):
  config = small_config(fake_data_config)
  view1_only = str(tmp_path / 'view1.npz')
  data.export(config.data, view1_only, ('view1',))
  config.data.bundle = view1_only
  with pytest.raises(LfwDataError, match=r"no pairs of split 'fold3' \(it holds: view1_test, "
                                         r"view1_train\)"):
    loading.load_pairs(config.data, 'fold3')
  config.data.bundle = str(tmp_path / 'absent.npz')
  with pytest.raises(LfwDataError, match='absent.npz does not exist'):
    loading.load_identities(config.data, 'view1_train')
  foreign = tmp_path / 'foreign.npz'
  np.savez(foreign, images=np.zeros(3))
  config.data.bundle = str(foreign)
  with pytest.raises(LfwDataError, match='foreign.npz is not a bundle of format 1'):
    loading.load_pairs(config.data, 'view1_test')
  garbage = tmp_path / 'garbage.npz'
  garbage.write_bytes(b'not a zip file')
  config.data.bundle = str(garbage)
  with pytest.raises(LfwDataError, match='garbage.npz is not a readable .npz bundle'):
    loading.load_pairs(config.data, 'view1_test')


def test_export_cli(fake_data_config, tmp_path, capsys):
  config_file = tmp_path / 'small.py'
  config_file.write_text('from lfw_siamese.configs import tiny\n\n\ndef get_config():\n'
                         '  return tiny.get_config()\n')
  output = tmp_path / 'out.npz'
  assert data.main(['export', '--config', str(config_file), '--output', str(output),
                    '--protocol', 'view1', '--lfw_dir', fake_data_config.lfw_dir,
                    '--tfds_dir', fake_data_config.tfds_dir]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result['splits'] == ['view1_train', 'view1_test']
  assert result['preprocessing'] == 'grayscale-crop150-size32'
  assert output.exists() and result['images'] > 0
  pairs_only = tmp_path / 'pairs_only.npz'
  assert data.main(['export', '--config', str(config_file), '--output', str(pairs_only),
                    '--protocol', 'view1', '--pairs_only', '--lfw_dir', fake_data_config.lfw_dir,
                    '--tfds_dir', fake_data_config.tfds_dir]) == 0
  smaller = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert smaller['people_images'] == 0 and smaller['pairs'] == result['pairs']
  assert smaller['images'] < result['images']  # Fake people outside the pair lists are left out.
  restricted = small_config(fake_data_config, bundle=str(pairs_only))
  assert len(loading.training_data(restricted).train) > 0
  restricted.data.paradigm = 'unrestricted'
  with pytest.raises(LfwDataError, match="no people of split 'view1_train'"):
    loading.training_data(restricted)
  assert data.main(['export', '--config', str(tmp_path / 'nope.py'), '--output',
                    str(output)]) == 2
  assert 'nope.py: no such file' in capsys.readouterr().err
  with pytest.raises(SystemExit):
    data.main(['export'])  # --output is required.
