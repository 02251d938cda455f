"""Faults of files on disk and of interrupted runs: corrupt checkpoints, prepared data from another
LFW copy, a workdir that cannot take the run."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from conftest import data_config
import fake_lfw as fake_lfw_lib
import train_fakes
from lfw_siamese import checkpointing
from lfw_siamese import main
from lfw_siamese import train
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import lists
from lfw_siamese.data import loading
from lfw_siamese.data.lists import LfwDataError

ROOT = pathlib.Path(__file__).parent.parent


def _truncate(path: pathlib.Path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def _largest_file(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A finished two-epoch run of the tiny config on fake pairs, and its summary."""
  workdir = tmp_path_factory.mktemp('trained')
  summary = train.train_and_evaluate(train_fakes.tiny_config(), str(workdir),
                                     data=train_fakes.training_data())
  return workdir, summary


@pytest.mark.slow
def test_prepared_data_follows_the_lfw_copy_it_came_from(tmp_path, capfd):
  tfds_dir = tmp_path / 'tfds'
  first = fake_lfw_lib.make_fake_lfw(tmp_path / 'first')
  second = fake_lfw_lib.make_fake_lfw(tmp_path / 'second')
  name = lists.read_people(first / 'people.txt')[0][0].name  # An image of fold 0's people.
  first_image = fake_lfw_lib.image_path(first, 'deepfunneled', name, 1)
  replaced = fake_lfw_lib.image_path(second, 'deepfunneled', name, 1)
  Image.new('RGB', (250, 250), (255, 255, 255)).save(replaced, quality=50)  # Another size.
  assert first_image.stat().st_size != replaced.stat().st_size

  def image_of(lfw_dir):
    identities = loading.load_identities(
        data_config(lfw_dir=str(lfw_dir), tfds_dir=str(tfds_dir)), 'fold0')
    return identities.images[np.flatnonzero((identities.names == name)
                                            & (identities.numbers == 1))[0]]

  from_first = image_of(first)
  capfd.readouterr()
  from_second = image_of(second)  # The same TFDS dir: it must notice the other copy.
  assert 'preparing it again' in capfd.readouterr().err
  assert from_second.mean() > from_first.mean() + 30  # The white image, not the first copy's.
  assert image_of(first).mean() == from_first.mean()  # And back.

  missing = fake_lfw_lib.make_fake_lfw(tmp_path / 'missing')
  fake_lfw_lib.image_path(missing, 'deepfunneled', name, 1).unlink()
  with pytest.raises(LfwDataError, match=rf'{name}_0001\.jpg not found'):
    image_of(missing)


def test_workdir_that_is_a_file_or_cannot_be_written_is_refused_before_training(tmp_path):
  config, data = train_fakes.tiny_config(), train_fakes.training_data()
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a folder')
  with pytest.raises(workdir_lib.WorkdirConflict, match='a_file: exists and is not a folder'):
    train.train_and_evaluate(config, str(a_file), data=data)
  with pytest.raises(workdir_lib.WorkdirConflict, match='run: cannot write the run there'):
    train.train_and_evaluate(config, str(a_file / 'run'), data=data)  # Its parent is a file.
  if os.geteuid() != 0:  # Root writes into read-only folders.
    read_only = tmp_path / 'read_only'
    read_only.mkdir(mode=0o500)
    with pytest.raises(workdir_lib.WorkdirConflict, match='cannot write the run there'):
      train.train_and_evaluate(config, str(read_only / 'run'), data=data)
  assert not list(tmp_path.rglob(workdir_lib.CONFIG))


@pytest.mark.slow
def test_main_names_a_workdir_that_is_a_file_in_one_line(tmp_path, fake_lfw):
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  result = subprocess.run(
      [sys.executable, '-m', 'lfw_siamese.main', '--workdir', str(a_file), '--config',
       str(ROOT / 'lfw_siamese' / 'configs' / 'tiny.py'), f'--config.data.lfw_dir={fake_lfw}'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
      env={**os.environ, 'PYTHONPATH': str(ROOT)})
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
  assert 'a_file: exists and is not a folder' in lines[0]


@pytest.mark.slow
def test_corrupt_best_checkpoint_is_one_line_naming_its_folder(tmp_path, trained):
  workdir = tmp_path / 'run'
  shutil.copytree(trained[0], workdir)
  best = next(p for p in (workdir / 'checkpoints' / 'best').iterdir() if p.name.isdigit())
  _truncate(_largest_file(best))
  with pytest.raises(checkpointing.CheckpointError, match=rf'{best}: unreadable checkpoint') as e:
    checkpointing.load_best(str(workdir))
  assert '\n' not in str(e.value) and len(str(e.value)) < 600
  result = subprocess.run([sys.executable, '-m', 'lfw_siamese.evaluate', '--workdir',
                           str(workdir), '--protocol', 'view1'], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
  assert f'{best}: unreadable checkpoint' in lines[0]


@pytest.mark.slow
def test_resume_passes_over_a_corrupt_latest_checkpoint(tmp_path, trained, capfd):
  reference, summary = trained
  workdir = tmp_path / 'run'
  shutil.copytree(reference, workdir)
  (workdir / workdir_lib.SUMMARY).unlink()
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints' / 'latest').iterdir()
                 if p.name.isdigit())
  assert len(steps) == 2  # Two are kept, so that one can be passed over.
  newest = workdir / 'checkpoints' / 'latest' / str(steps[-1])
  _truncate(_largest_file(newest))
  capfd.readouterr()
  resumed = train.train_and_evaluate(train_fakes.tiny_config(), str(workdir),
                                     data=train_fakes.training_data())
  assert f'resuming from step {steps[0]} instead' in capfd.readouterr().err
  _, expected_state, _ = checkpointing.load_latest(str(reference))
  _, state, _ = checkpointing.load_latest(str(workdir))
  for a, b in zip(jax.tree.leaves(expected_state['params']), jax.tree.leaves(state['params'])):
    np.testing.assert_array_equal(a, b)  # The redone epoch draws what the first run drew.
  assert {k: v for k, v in resumed.items() if k != 'train_seconds'} == {
      k: v for k, v in summary.items() if k != 'train_seconds'}


def test_an_unreadable_new_best_leaves_the_previous_one(tmp_path, trained, monkeypatch):
  workdir = tmp_path / 'run'
  shutil.copytree(trained[0], workdir)
  checkpoints = checkpointing.Checkpoints(str(workdir))
  kept = checkpoints.best_epoch()
  params, record = checkpoints.restore_best()
  real_restore = checkpointing._restore  # pylint: disable=protected-access

  def unreadable(manager, step, *args):
    if step == kept + 5:
      raise checkpointing.CheckpointError(f'{manager.directory}/{step}: unreadable checkpoint')
    return real_restore(manager, step, *args)

  monkeypatch.setattr(checkpointing, '_restore', unreadable)
  with pytest.raises(checkpointing.CheckpointError, match='the previous best checkpoint is kept'):
    checkpoints.save_best(kept + 5, params, {**record, 'epoch': kept + 5})
  monkeypatch.setattr(checkpointing, '_restore', real_restore)
  assert checkpoints.best_epoch() == kept
  assert checkpoints.restore_best()[1] == record
  checkpoints.close()


FUSED = {'loss': 'supcon', 'data.paradigm': 'unrestricted', 'lbp_fusion.enabled': True,
         'lbp_fusion.radii': (1, 2), 'lbp_fusion.grids': (4, 2), 'lbp_fusion.dims': 32,
         'lbp_fusion.metric.steps': 40, 'lbp_fusion.metric.width': 32, 'lbp_fusion.metric.dims': 8}


class _Stopped(Exception):
  pass


def _stop_at(name):
  def on_stage(stage):
    if name in stage:
      raise _Stopped(stage)
  return on_stage


def _without_time(summary):
  return {name: value for name, value in summary.items() if name != 'train_seconds'}


@pytest.mark.slow
def test_a_run_stopped_in_its_final_stages_finishes_as_if_never_stopped(tmp_path):
  """Covered: SIGKILL inside the fusion fit (as the metric starts), then stops after the last
  epoch, as scoring starts, as the fusion weights are fitted and as the files are written."""
  config, data = train_fakes.tiny_config(**FUSED), train_fakes.identity_training_data()
  reference = train.train_and_evaluate(config, str(tmp_path / 'reference'), data=data)
  workdir = tmp_path / 'run'
  killed = subprocess.run(
      [sys.executable, str(ROOT / 'tests' / 'train_fakes.py'), str(workdir), json.dumps(FUSED),
       'a metric on the descriptors'], capture_output=True, text=True, timeout=600,
      env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), str(ROOT / 'tests')])})
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert 'a metric on the descriptors' in killed.stderr and 'weights on' not in killed.stderr
  assert not (workdir / workdir_lib.SUMMARY).exists()
  for stage in ('training done', 'scoring', 'fusion stage: weights', 'writing'):
    with pytest.raises(_Stopped, match=stage):
      train.train_and_evaluate(config, str(workdir), data=data, on_stage=_stop_at(stage))
  finished = train.train_and_evaluate(config, str(workdir), data=data)
  assert _without_time(finished) == _without_time(reference)
  assert _without_time(workdir_lib.read_summary(str(workdir))) == _without_time(reference)
  assert (workdir / workdir_lib.FUSION_STAGE).read_bytes() == (
      tmp_path / 'reference' / workdir_lib.FUSION_STAGE).read_bytes()
  assert not list(workdir.rglob('*.partial'))


@pytest.mark.slow
def test_a_machine_without_lfw_downloads_the_funneled_variant(tmp_path, lfw_mirror, capsys):
  lfw_mirror('funneled')  # A loopback mirror of a fake funneled archive and its lists.
  workdir, tfds_dir = tmp_path / 'run', tmp_path / 'tfds'
  status = main.main([
      '--workdir', str(workdir), '--config', str(ROOT / 'lfw_siamese' / 'configs' / 'tiny.py'),
      '--config.data.lfw_dir=', f'--config.data.tfds_dir={tfds_dir}', '--config.num_epochs=1',
      '--config.batch_size=8', '--config.data.validation_fraction=0.25',
      '--config.keep_freed_memory=False'])
  out, err = capsys.readouterr()
  assert status == 0, err[-2000:]
  assert 'no LFW deepfunneled here' in err and 'uses the funneled variant' in err
  assert json.loads(out.strip().splitlines()[-1])['variant'] == 'funneled'
  summary = workdir_lib.read_summary(str(workdir))
  assert summary['variant'] == 'funneled' and summary['config']['data']['variant'] == 'funneled'
  assert (tfds_dir / 'downloads' / 'lfw_siamese' / 'lfw-funneled.tgz').is_file()
  present = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw')  # With a copy here, no fallback.
  assert loading.fallback_variant(data_config(lfw_dir=str(present), tfds_dir=str(tfds_dir))) is None
