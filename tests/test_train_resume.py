"""Kill-and-resume equals an uninterrupted run (bitwise); 4 CPU devices equal one (allclose)."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import train_fakes
from lfw_siamese import checkpointing
from lfw_siamese import train

pytestmark = pytest.mark.slow  # Subprocesses and whole runs: make test-fast skips them.

TESTS = pathlib.Path(__file__).parent
# Dropout and both augmentations on, so that resuming must also reproduce every random draw.
OVERRIDES = {'model.dropout': 0.3, 'augment.flip': True, 'augment.affine': True, 'num_epochs': 2}


def _command(workdir, **extra):
  return [sys.executable, str(TESTS / 'train_fakes.py'), str(workdir),
          json.dumps({**OVERRIDES, **extra})]


def _environment(**extra):
  return {**os.environ, 'PYTHONPATH': os.pathsep.join([str(TESTS.parent), str(TESTS)]), **extra}


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  summary = train.train_and_evaluate(train_fakes.tiny_config(**OVERRIDES), str(workdir),
                                     data=train_fakes.training_data())
  return workdir, summary


def _latest_params(workdir):
  return checkpointing.load_latest(str(workdir))[1]['params']


def _saved_steps(workdir):
  latest = pathlib.Path(workdir, 'checkpoints', 'latest')
  return [int(p.name) for p in latest.glob('*') if p.name.isdigit()] if latest.exists() else []


def _without_times(history):
  return [{k: v for k, v in record.items() if k != 'train_seconds'} for record in history]


UNRESTRICTED = {**OVERRIDES, 'loss': 'supcon', 'data.paradigm': 'unrestricted',
                'data.singles_per_batch': 2}  # Identity batches, one-image people among them.
# Each run saves every 3 steps (a run-only field: the config matches the uninterrupted run's)
# and kills itself (SIGKILL) where named: between two saves (after step 5), after an epoch's last
# step (16), as its validation starts, and in the unrestricted and CosFace runs mid-epoch.
KILLS = [('restricted', OVERRIDES, 'step 5 done'), ('restricted', OVERRIDES, 'step 16 done'),
         ('restricted', OVERRIDES, 'epoch 1 validation'),
         ('unrestricted', UNRESTRICTED, 'step 4 done'),
         ('cosface', {**UNRESTRICTED, 'cosface.weight': 1.0}, 'step 4 done')]


def _data(overrides):
  if overrides.get('data.paradigm') == 'unrestricted':
    return train_fakes.identity_training_data(singles=16)
  return train_fakes.training_data()


@pytest.mark.parametrize('name, overrides, kill_at', KILLS,
                         ids=[f'{n}-{k.replace(" ", "_")}' for n, _, k in KILLS])
def test_sigkill_then_resume_ends_with_the_same_params(tmp_path, uninterrupted, name, overrides,
                                                       kill_at):
  if overrides is OVERRIDES:
    reference, reference_summary = uninterrupted
  else:
    reference = tmp_path / 'reference'
    reference_summary = train.train_and_evaluate(train_fakes.tiny_config(**overrides),
                                                 str(reference), data=_data(overrides))
  workdir = tmp_path / name
  killed = subprocess.run(_command(workdir, **overrides, checkpoint_every_steps=3) + [kill_at],
                          env=_environment(), capture_output=True, text=True, timeout=300)
  assert killed.returncode == -signal.SIGKILL, f'not killed: {killed.stderr[-1000:]}'
  assert not (workdir / 'summary.json').exists()

  summary = train.train_and_evaluate(train_fakes.tiny_config(**overrides), str(workdir),
                                     data=_data(overrides))
  jax.tree.map(np.testing.assert_array_equal, _latest_params(workdir), _latest_params(reference))
  history = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  reference_history = [json.loads(line)
                       for line in (reference / 'metrics.jsonl').read_text().splitlines()]
  assert _without_times(history) == _without_times(reference_history)
  for field in ('best_epoch', 'val_acc', 'test_acc', 'test_auc', 'threshold'):
    assert summary[field] == reference_summary[field]


class _Killed(Exception):
  pass


def test_crash_between_best_and_latest_saves_resumes_the_same(tmp_path, uninterrupted,
                                                              monkeypatch):
  reference, reference_summary = uninterrupted
  save_latest = checkpointing.Checkpoints.save_latest

  def dies_after_first_best(self, step, state, progress):
    if progress['epoch'] == 1 and progress['batches_done'] == 0:
      raise _Killed  # Epoch 1 always saves a best first: that save is on disk, 'latest' is not.
    save_latest(self, step, state, progress)

  monkeypatch.setattr(checkpointing.Checkpoints, 'save_latest', dies_after_first_best)
  with pytest.raises(_Killed):
    train.train_and_evaluate(train_fakes.tiny_config(**OVERRIDES), str(tmp_path),
                             data=train_fakes.training_data())
  assert (tmp_path / 'checkpoints' / 'best' / '1').exists()
  monkeypatch.setattr(checkpointing.Checkpoints, 'save_latest', save_latest)
  summary = train.train_and_evaluate(train_fakes.tiny_config(**OVERRIDES), str(tmp_path),
                                     data=train_fakes.training_data())
  jax.tree.map(np.testing.assert_array_equal, checkpointing.load_best(str(tmp_path))[1],
               checkpointing.load_best(str(reference))[1])
  for name in ('best_epoch', 'val_acc', 'test_acc', 'test_auc'):
    assert summary[name] == reference_summary[name]


def test_four_cpu_devices_train_like_one(tmp_path, uninterrupted):
  reference, _ = uninterrupted
  result = subprocess.run(
      _command(tmp_path), capture_output=True, text=True, timeout=300,
      env=_environment(XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(result.stdout.strip().splitlines()[-1])['devices'] == 4
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **train_fakes.SPLIT_TOLERANCE),
               _latest_params(tmp_path), _latest_params(reference))
