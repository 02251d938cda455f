"""The command line: one-line errors, and whole runs on fake and (with LFW_DIR) real LFW."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Subprocesses and whole runs: make test-fast skips them.

ROOT = pathlib.Path(__file__).parent.parent
TINY = str(ROOT / 'lfw_siamese' / 'configs' / 'tiny.py')


def _main(*args, timeout=600, **environment):
  return subprocess.run([sys.executable, '-m', 'lfw_siamese.main', *args], capture_output=True,
                        text=True, timeout=timeout, cwd=ROOT,
                        env={**os.environ, 'PYTHONPATH': str(ROOT), **environment})


def _assert_one_line_error(result, pattern):
  lines = result.stderr.strip().splitlines()
  assert result.returncode != 0
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert pattern in lines[0], lines[0]


@pytest.mark.parametrize('override, message', [
    ('--config.learning_rat=0.1',
     '--config.learning_rat: no such config field; did you mean learning_rate?'),
    ('--config.model.nope=1', '--config.model.nope: no such config field'),
    ('--config.batch_size=many',
     "flag --config.batch_size=many: invalid literal for int() with base 10: 'many'"),
    ('--config.optimizer=adagrad',
     "config.optimizer: expected one of ('adam', 'rmsprop', 'sgd'), got 'adagrad'"),
])
def test_bad_config_gets_one_line(tmp_path, override, message):
  _assert_one_line_error(_main('--workdir', str(tmp_path), '--config', TINY, override), message)


def test_missing_config_file_gets_one_line(tmp_path):
  _assert_one_line_error(_main('--workdir', str(tmp_path), '--config', str(tmp_path / 'no.py')),
                         'no.py')


def _check_run_files(workdir: pathlib.Path, epochs: int):
  history = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [record['epoch'] for record in history] == list(range(1, epochs + 1))
  for record in history:
    assert {'train_loss', 'train_acc', 'val_loss', 'val_acc'} <= set(record)
    assert 0 <= record['val_acc'] <= 1 and record['train_loss'] > 0
  summary = json.loads((workdir / 'summary.json').read_text())
  for name in ('val_acc', 'test_acc_at_0_5', 'test_acc', 'threshold', 'test_auc'):
    assert 0 <= summary[name] <= 1, name
  assert 1 <= summary['best_epoch'] <= epochs and summary['train_seconds'] > 0
  assert summary['config'] == json.loads((workdir / 'config.json').read_text())
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  assert [p.name for p in (workdir / 'checkpoints' / 'best').iterdir() if p.name.isdigit()] == [
      str(summary['best_epoch'])]
  assert list((workdir / 'checkpoints' / 'latest').iterdir())
  return summary


def test_command_trains_on_fake_lfw_resumes_and_refuses_another_config(tmp_path, fake_data_config):
  workdir = tmp_path / 'run'
  data_flags = [f'--config.data.lfw_dir={fake_data_config.lfw_dir}',
                f'--config.data.tfds_dir={fake_data_config.tfds_dir}',
                '--config.data.validation_fraction=0.25', '--config.batch_size=8',
                '--config.num_epochs=2']
  result = _main('--workdir', str(workdir), '--config', TINY, *data_flags)
  assert result.returncode == 0, result.stderr[-3000:]
  printed = json.loads(result.stdout.strip().splitlines()[-1])
  summary = _check_run_files(workdir, epochs=2)
  assert printed['test_acc'] == summary['test_acc']

  conflict = _main('--workdir', str(workdir), '--config', TINY, *data_flags, '--config.seed=7')
  _assert_one_line_error(conflict, 'seed: 0 -> 7')
  assert '--restart' in conflict.stderr
  restarted = _main('--workdir', str(workdir), '--config', TINY, *data_flags, '--config.seed=7',
                    '--config.num_epochs=1', '--restart')
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  assert _check_run_files(workdir, epochs=1)['config']['seed'] == 7


def test_missing_lfw_falls_back_to_a_download_then_fails_in_one_line(tmp_path):
  result = _main('--workdir', str(tmp_path / 'run'), '--config', TINY,
                 f'--config.data.lfw_dir={tmp_path / "nowhere"}',
                 f'--config.data.tfds_dir={tmp_path / "tfds"}', LFW_DIR='',
                 https_proxy='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9')  # Refused.
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert 'uses the funneled variant' in lines[0]
  assert all(line.startswith('Downloading ') for line in lines[1:-1])
  assert lines[-1].startswith('lfw_siamese.main: error:') and 'nowhere' in lines[-1]


def test_command_on_real_lfw_writes_its_files(tmp_path, real_data_config):
  workdir = tmp_path / 'real'
  result = _main('--workdir', str(workdir), '--config', TINY,
                 f'--config.data.lfw_dir={real_data_config.lfw_dir}',
                 f'--config.data.tfds_dir={real_data_config.tfds_dir}', '--config.num_epochs=2')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = _check_run_files(workdir, epochs=2)
  assert summary['config']['data']['protocol'] == 'view1'
  assert summary['test_pairs'] == 1000
  history = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert history[0]['step'] == 2145 // 16


def test_multihost_flags_and_their_environment_variables_reach_jax_distributed(monkeypatch):
  from lfw_siamese import main  # pylint: disable=g-import-not-at-top
  calls = []

  class _Stop(Exception):
    pass

  def initialize(*args):
    calls.append(args)
    raise _Stop

  monkeypatch.setattr(main.sharding, 'initialize_distributed', initialize)
  monkeypatch.setenv('LFW_SIAMESE_COORDINATOR', 'host0:1234')
  monkeypatch.setenv('LFW_SIAMESE_NUM_PROCESSES', '4')
  monkeypatch.setenv('LFW_SIAMESE_PROCESS_ID', '2')
  common = ['--workdir', 'unused', '--config', TINY, '--config.keep_freed_memory=False']
  with pytest.raises(_Stop):
    main.main(common)
  with pytest.raises(_Stop):
    main.main(common + ['--coordinator_address', 'other:99', '--num_processes', '2',
                        '--process_id', '1'])
  assert calls == [('host0:1234', 4, 2), ('other:99', 2, 1)]  # Flags win over the environment.
