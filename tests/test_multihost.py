"""Two processes on this machine (coordinator on 127.0.0.1) train as one process does."""

import pytest
import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np

import train_fakes
from lfw_siamese import checkpointing
from lfw_siamese import train

pytestmark = pytest.mark.slow  # Subprocesses and whole runs: make test-fast skips them.

TESTS = pathlib.Path(__file__).parent
OVERRIDES = {'augment.flip': True, 'num_epochs': 2}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
  shared, single = tmp_path / 'two_processes', tmp_path / 'one_process'
  coordinator = f'127.0.0.1:{_free_port()}'
  environment = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(TESTS.parent), str(TESTS)]),
                 'LFW_SIAMESE_COORDINATOR': coordinator, 'LFW_SIAMESE_NUM_PROCESSES': '2'}
  environment.pop('XLA_FLAGS', None)
  processes = [subprocess.Popen(
      [sys.executable, str(TESTS / 'train_fakes.py'), str(shared), json.dumps(OVERRIDES)],
      env={**environment, 'LFW_SIAMESE_PROCESS_ID': str(index)}, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for index in range(2)]
  try:
    outputs = [process.communicate(timeout=300) for process in processes]
  finally:
    for process in processes:
      process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-2000:]
  assert json.loads(outputs[0][0].strip().splitlines()[-1]) == {'devices': 2, 'processes': 2}

  summary = train.train_and_evaluate(train_fakes.tiny_config(**OVERRIDES), str(single),
                                     data=train_fakes.training_data())
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **train_fakes.SPLIT_TOLERANCE),
               checkpointing.load_latest(str(shared))[1]['params'],
               checkpointing.load_latest(str(single))[1]['params'])
  two = json.loads((shared / 'summary.json').read_text())
  assert two['best_epoch'] == summary['best_epoch']
  assert abs(two['test_auc'] - summary['test_auc']) < 1e-3
  assert len((shared / 'metrics.jsonl').read_text().splitlines()) == 2
