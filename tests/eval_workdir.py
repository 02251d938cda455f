"""A tiny model really trained on a fake LFW, built once per test process, for evaluation tests."""

import atexit
import functools
import os
import shutil
import tempfile

import fake_lfw
from lfw_siamese.configs import tiny


def tiny_config(root: str):
  """The tiny config pointed at the fake LFW under root, with a validation split big enough."""
  config = tiny.get_config()
  config.data.lfw_dir = os.path.join(root, 'lfw')
  config.data.tfds_dir = os.path.join(root, 'tfds')
  config.data.cache_dir = os.path.join(root, 'cache')
  config.data.validation_fraction = 0.25
  config.num_epochs = 2
  config.batch_size = 16
  return config


@functools.cache
def fake_lfw_root() -> str:
  """A temporary folder holding a fake LFW at lfw/ (removed when the process exits)."""
  root = tempfile.mkdtemp(prefix='lfw_siamese_eval_')
  atexit.register(shutil.rmtree, root, ignore_errors=True)
  fake_lfw.make_fake_lfw(os.path.join(root, 'lfw'), people=30, dev_train_pairs=40,
                         dev_test_pairs=20, fold_pairs=10)
  return root


@functools.cache
def _trained_view1() -> str:
  from lfw_siamese import train  # pylint: disable=g-import-not-at-top
  root = fake_lfw_root()
  workdir = os.path.join(root, 'runs', 'view1')
  train.train_and_evaluate(tiny_config(root), workdir)
  return workdir


def trained_workdir(destination: str) -> str:
  """A copy (at destination) of a View 1 run of the tiny config on the fake LFW."""
  shutil.copytree(_trained_view1(), destination)
  return destination
