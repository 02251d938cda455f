"""The TFDS builders on fake LFW: splits, variants, sources, checks, downloads and the info CLI."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fake_lfw as fake_lfw_lib
from conftest import data_config
from lfw_siamese.data import cli as data
from lfw_siamese.data import lists
from lfw_siamese.data import sources
from lfw_siamese.data import tfds_lfw
from lfw_siamese.data.lists import LfwDataError

ROOT = pathlib.Path(__file__).parent.parent


def prepare(root, tmp_path, **overrides):
  config = data_config(lfw_dir=str(root), tfds_dir=str(tmp_path / 'tfds'), **overrides)
  return tfds_lfw.prepare(config)


def test_pair_splits_follow_the_lists_in_order(fake_data_config, fake_lfw):
  builder = tfds_lfw.builder('pairs', fake_data_config)
  assert set(builder.info.splits) == set(tfds_lfw.PAIR_SPLITS)
  for split, (filename, fold) in [('view1_train', ('pairsDevTrain.txt', 0)),
                                  ('view1_test', ('pairsDevTest.txt', 0)),
                                  ('fold0', ('pairs.txt', 0)), ('fold7', ('pairs.txt', 7))]:
    expected = lists.read_pairs(fake_lfw / filename)[fold]
    examples = tfds_lfw.read_split(builder, split)
    assert [(e['name1'], e['number1'], e['name2'], e['number2'], e['label']) for e in examples] == [
        (p.name1, p.number1, p.name2, p.number2, p.label) for p in expected]


def test_images_are_the_upstream_jpeg_bytes(fake_data_config, fake_lfw):
  builder = tfds_lfw.builder('pairs', fake_data_config)
  example = tfds_lfw.read_split(builder, 'fold3')[-1]
  path = fake_lfw_lib.image_path(fake_lfw, 'deepfunneled', example['name2'], example['number2'])
  assert example['image2'] == path.read_bytes()
  decoded = builder.as_data_source('fold3')[0]
  assert decoded['image1'].shape == (250, 250, 3) and decoded['image1'].dtype == np.uint8


def test_people_splits_follow_the_people_lists(fake_data_config):
  plan = fake_lfw_lib.plan_people(30)
  builder = tfds_lfw.builder('people', fake_data_config)
  for split, people in [('view1_train', plan.dev_train_people),
                        ('view1_test', plan.dev_test_people), ('fold4', plan.fold_people[4])]:
    examples = tfds_lfw.read_split(builder, split)
    assert [(e['name'], e['number']) for e in examples] == [
        (name, number) for name in people for number in range(1, plan.counts[name] + 1)]
  assert builder.info.metadata['people_lists'] == 'given'


@pytest.mark.parametrize('variant,grayscale,archive', [
    ('original', False, False), ('funneled', False, True), ('deepfunneled', False, True),
    ('lfwa', True, False), ('lfwa', True, True)])
def test_variants_from_folder_or_archive(tmp_path, variant, grayscale, archive):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw', variant=variant, grayscale=grayscale,
                                    archive=archive)
  builders = prepare(root, tmp_path, variant=variant)
  channels = 1 if grayscale else 3
  assert builders['pairs'].channels == channels
  example = builders['pairs'].as_data_source('view1_test')[0]
  assert example['image1'].shape == (250, 250, channels)
  assert len(builders['people'].as_data_source('view1_train')) == sum(
      fake_lfw_lib.plan_people(30).counts[n] for n in fake_lfw_lib.plan_people(30).dev_train_people)
  assert builders['pairs'].info.metadata['origin'].startswith('config.data.lfw_dir')


@pytest.mark.parametrize('variant,grayscale', [('lfwa', False), ('deepfunneled', True)])
def test_channel_mismatch_is_an_error(tmp_path, variant, grayscale):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw', variant=variant, grayscale=grayscale)
  with pytest.raises(LfwDataError, match=r'pairsDevTrain.txt:2: image .* is mode '
                                         + ('RGB' if variant == 'lfwa' else 'L')):
    prepare(root, tmp_path, variant=variant)
  assert not (tmp_path / 'tfds' / 'lfw_pairs' / variant / '1.0.0' / 'dataset_info.json').exists()


def test_missing_corrupt_and_wrong_size_images(tmp_path):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw')
  first = lists.read_pairs(root / 'pairsDevTest.txt')[0][0]
  path = fake_lfw_lib.image_path(root, 'deepfunneled', first.name2, first.number2)
  path.write_bytes(b'not a jpeg')
  with pytest.raises(LfwDataError, match=r'pairsDevTest.txt:2: image .*_000\d.jpg does not decode'):
    prepare(root, tmp_path)
  Image.new('RGB', (200, 250)).save(path)
  with pytest.raises(LfwDataError, match=r'pairsDevTest.txt:2: .* is 200x250, expected 250x250'):
    prepare(root, tmp_path / 'b')
  path.unlink()
  with pytest.raises(LfwDataError, match=rf'pairsDevTest.txt:2: image .*{path.name} not found'):
    prepare(root, tmp_path / 'c')


def test_malformed_list_stops_preparation(tmp_path):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw')
  fake_lfw_lib.replace_line(root / 'pairs.txt', 5, 'Somebody 1')
  with pytest.raises(LfwDataError, match=r"pairs.txt:5: expected 'NAME i j' or 'NAME1 i NAME2 j', "
                                         r"got 'Somebody 1'"):
    prepare(root, tmp_path)


def test_source_order_and_manual_dir(tmp_path, monkeypatch):
  env_root = fake_lfw_lib.make_fake_lfw(tmp_path / 'env', fold_pairs=2)
  manual = sources.manual_dir(tmp_path / 'tfds')
  fake_lfw_lib.make_fake_lfw(manual, fold_pairs=3, archive=True)
  monkeypatch.setenv('LFW_DIR', str(env_root))
  assert sources.locate('deepfunneled', tfds_dir=tmp_path / 'tfds').directory == env_root
  configured = sources.locate('deepfunneled', lfw_dir=str(manual), tfds_dir=tmp_path / 'x')
  assert configured.origin.startswith('config.data.lfw_dir')
  monkeypatch.delenv('LFW_DIR')
  found = sources.locate('deepfunneled', tfds_dir=tmp_path / 'tfds')
  assert found.origin.startswith('TFDS manual dir') and isinstance(found.images,
                                                                   sources.ArchiveImages)
  builders = tfds_lfw.prepare(data_config(tfds_dir=str(tmp_path / 'tfds')))
  assert len(builders['pairs'].as_data_source('fold9')) == 6


def test_no_data_says_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.delenv('LFW_DIR', raising=False)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(LfwDataError) as error:
    tfds_lfw.prepare(data_config(lfw_dir=str(empty), tfds_dir=str(tmp_path / 'tfds')))
  message = str(error.value)
  assert '\n' not in message
  for expected in (f'config.data.lfw_dir {empty}: no lfw-deepfunneled/ or lfw-deepfunneled.tgz',
                   f"TFDS manual dir {tmp_path / 'tfds' / 'downloads' / 'manual'}: no such folder",
                   "no download mirror for 'deepfunneled'", 'set LFW_DIR'):
    assert expected in message


def test_info_cli_without_data_is_one_line_without_traceback(tmp_path):
  env = {'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path), 'PYTHONPATH': str(ROOT)}
  result = subprocess.run(
      [sys.executable, '-m', 'lfw_siamese.data', 'info', '--tfds_dir', str(tmp_path / 'tfds')],
      capture_output=True, text=True, env=env, timeout=120)
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  assert result.stderr.startswith("error: No LFW data for variant 'deepfunneled'")
  assert result.stderr.count('\n') == 1 and result.stdout == ''


def test_info_cli_prints_table_and_json(fake_data_config, capsys):
  assert data.main(['info', '--lfw_dir', fake_data_config.lfw_dir,
                    '--tfds_dir', fake_data_config.tfds_dir]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  summary = json.loads(out[-1])
  assert out[0].split()[:4] == ['split', 'pairs', 'same', 'different']
  assert summary['view1_train'] == 40 and summary['view1_test'] == 20
  assert summary['view2_folds'] == [10] * 10 and summary['same_pairs_view1_train'] == 20
  assert summary['people_disjoint_view1'] is True and summary['people_disjoint_view2'] is True
  assert summary['variant'] == 'deepfunneled' and summary['images'] == sum(
      fake_lfw_lib.plan_people(30).counts.values())


def test_disjointness_is_computed_from_the_data(tmp_path):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw')
  (dev_train,) = lists.read_pairs(root / 'pairsDevTrain.txt')
  (dev_test,) = lists.read_pairs(root / 'pairsDevTest.txt')
  intruder = dev_train[0]  # A View 1 training pair, copied into the test list.
  replacement = f'{intruder.name1}\t{intruder.number1}\t{intruder.number2}'
  fake_lfw_lib.replace_line(root / 'pairsDevTest.txt', dev_test[0].line, replacement)
  summary = data.summarize(data_config(lfw_dir=str(root), tfds_dir=str(tmp_path / 'tfds')))
  assert summary['people_disjoint_view1'] is False and summary['people_disjoint_view2'] is True


@pytest.fixture
def mirror(lfw_mirror):
  """A local HTTP mirror of a fake LFW's original archive and pair lists."""
  return lfw_mirror('original')


def test_download_checks_sha256_and_derives_people(tmp_path, mirror):
  del mirror
  builders = tfds_lfw.prepare(data_config(variant='original', tfds_dir=str(tmp_path / 'tfds')))
  assert builders['pairs'].info.metadata['origin'].startswith('download into')
  assert (tmp_path / 'tfds' / 'downloads' / 'lfw_siamese' / 'lfw.tgz').exists()
  assert builders['people'].info.metadata['people_lists'] == 'derived from the pair lists'
  pair_names = {e[f'name{s}'] for e in tfds_lfw.read_split(builders['pairs'], 'fold2')
                for s in (1, 2)}
  people = tfds_lfw.read_split(builders['people'], 'fold2')
  assert {e['name'] for e in people} == pair_names


def test_download_failures_are_reported(tmp_path, mirror, monkeypatch):
  bad_sha = sources.Download('lfw.tgz', mirror('lfw.tgz').url, '0' * 64)
  monkeypatch.setattr(sources, 'ARCHIVE_DOWNLOADS', {'original': bad_sha})
  with pytest.raises(LfwDataError, match=r'download of lfw.tgz .* failed 3 times \(sha256 '):
    sources.locate('original', tfds_dir=tmp_path / 'tfds')
  assert not list((tmp_path / 'tfds' / 'downloads' / 'lfw_siamese').glob('lfw.tgz*'))
  monkeypatch.setattr(sources, 'ARCHIVE_DOWNLOADS',
                      {'original': mirror('lfw.tgz', prefix='forbidden/')})
  with pytest.raises(LfwDataError, match=r'HTTP Error 403'):
    sources.locate('original', tfds_dir=tmp_path / 'tfds')


def test_processes_starting_together_prepare_once(tmp_path):
  root = fake_lfw_lib.make_fake_lfw(tmp_path / 'lfw')
  script = ('import sys; from conftest import data_config; from lfw_siamese.data import loading;'
            f"c = data_config(lfw_dir={str(root)!r}, tfds_dir={str(tmp_path / 'tfds')!r});"
            "print(len(loading.load_pairs(c, 'fold2')))")
  env = {'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path),
         'PYTHONPATH': os.pathsep.join([str(ROOT), str(pathlib.Path(__file__).parent)])}
  runs = [subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
  outputs = [run.communicate(timeout=120) for run in runs]
  assert [run.returncode for run in runs] == [0, 0], outputs
  assert [out.strip() for out, _ in outputs] == ['10', '10']
  assert sum(err.count('Prepared lfw_pairs') for _, err in outputs) == 1
