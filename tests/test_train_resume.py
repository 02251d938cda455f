"""Kill-and-resume equals an uninterrupted run (bitwise); 4 CPU devices equal one (allclose)."""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import train_fakes
from lfw_siamese import checkpointing
from lfw_siamese import train

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


def test_sigkill_then_resume_ends_with_the_same_params(tmp_path, uninterrupted):
  reference, reference_summary = uninterrupted
  # Saves every 3 steps (a run-only field: the config matches the uninterrupted run's).
  process = subprocess.Popen(_command(tmp_path, checkpoint_every_steps=3), env=_environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  deadline = time.time() + 120
  while max(_saved_steps(tmp_path), default=0) < 4 and process.poll() is None:
    assert time.time() < deadline, 'the run saved no checkpoint in 120 s'
    time.sleep(0.005)
  time.sleep(random.uniform(0.0, 0.1))  # Somewhere after a save: mid-step, mid-save or mid-eval.
  process.send_signal(signal.SIGKILL)
  _, stderr = process.communicate()
  assert process.returncode == -signal.SIGKILL, f'the run ended before the kill: {stderr[-500:]}'
  killed_at = max(_saved_steps(tmp_path))
  assert 0 < killed_at < 32

  summary = train.train_and_evaluate(train_fakes.tiny_config(**OVERRIDES), str(tmp_path),
                                     data=train_fakes.training_data())
  jax.tree.map(np.testing.assert_array_equal, _latest_params(tmp_path), _latest_params(reference))
  history = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  reference_history = [json.loads(line)
                       for line in (reference / 'metrics.jsonl').read_text().splitlines()]
  assert _without_times(history) == _without_times(reference_history)
  for name in ('best_epoch', 'val_acc', 'test_acc', 'test_auc', 'threshold'):
    assert summary[name] == reference_summary[name]


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
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               _latest_params(tmp_path), _latest_params(reference))
