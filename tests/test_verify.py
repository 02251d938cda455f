"""The verify and embed commands and the inference API, on a tiny model trained on a fake LFW."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import package_env
import eval_workdir
import fake_lfw
from lfw_siamese import checkpointing
from lfw_siamese import embed
from lfw_siamese import inference
from lfw_siamese import train
from lfw_siamese import verify
from lfw_siamese.data import image_io
from lfw_siamese.data import loading
from lfw_siamese.model import networks


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return eval_workdir.trained_workdir(str(tmp_path_factory.mktemp('verify') / 'run'))


@pytest.fixture(scope='module')
def verifier(workdir):
  return inference.load(workdir, framing=inference.Framing(detect=False))


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
  """Two images of one fake person and one of another, as PNG (lossless) files."""
  folder = tmp_path_factory.mktemp('faces')
  paths = {}
  for name, (person, number) in {'a1': (0, 1), 'a2': (0, 2), 'b1': (3, 1)}.items():
    paths[name] = str(folder / f'{name}.png')
    fake_lfw.face_image(person, number).save(paths[name])
  return paths


def _summary_threshold(workdir):
  with open(os.path.join(workdir, 'summary.json')) as f:
    return json.load(f)['threshold']


def test_verify_prints_probability_threshold_and_decision(workdir, faces, capsys):
  assert verify.main(['--workdir', workdir, '--aligned', faces['a1'], faces['a2']]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in lines] == ['image_a', 'image_b', 'probability', 'threshold',
                                                 'decision']
  assert 'taken as an aligned crop' in lines[0]
  lines = lines[2:]
  assert 0.0 <= float(lines[0].split()[1]) <= 1.0
  probability, threshold = float(lines[0].split()[1]), float(lines[1].split()[1])
  assert threshold == pytest.approx(_summary_threshold(workdir), abs=1e-4)
  assert lines[2].split()[1] == ('same' if probability >= threshold else 'different')


def test_verify_json_matches_the_api(workdir, verifier, faces, capsys):
  assert verify.main(['--workdir', workdir, '--aligned', '--json', faces['a1'], faces['b1']]) == 0
  result = json.loads(capsys.readouterr().out)
  expected = verifier.verify(faces['a1'], faces['b1'])
  assert result['probability'] == pytest.approx(expected['probability'], abs=1e-6)
  assert result['threshold'] == _summary_threshold(workdir)
  assert result['same'] == (result['probability'] >= result['threshold'])


def test_threshold_override(workdir, faces, capsys):
  assert verify.main(['--workdir', workdir, '--aligned', '--json', '--threshold', '0', faces['a1'],
                      faces['b1']]) == 0
  assert json.loads(capsys.readouterr().out)['same'] is True
  assert verify.main(['--workdir', workdir, '--aligned', '--json', '--threshold', '1.01',
                      faces['a1'],
                      faces['b1']]) == 0
  assert json.loads(capsys.readouterr().out)['same'] is False


def test_verify_runs_as_a_module(workdir, faces):
  completed = subprocess.run(
      [sys.executable, '-m', 'lfw_siamese.verify', '--workdir', workdir, '--aligned', '--json',
       faces['a1'],
       faces['a2']], capture_output=True, text=True, timeout=120, check=False, env=package_env())
  assert completed.returncode == 0, completed.stderr
  assert set(json.loads(completed.stdout)) >= {'probability', 'threshold', 'same'}


def test_formats_and_sizes_are_preprocessed_alike(verifier, faces, tmp_path):
  reference = Image.open(faces['a1']).convert('RGB')
  other = faces['a2']
  variants = {
      'rgba.png': reference.convert('RGBA'),
      'gray.png': reference.convert('L'),
      'gray_as_rgb.png': reference.convert('L').convert('RGB'),
      'palette.gif': reference.convert('P'),
      'big.bmp': reference.resize((500, 500), Image.BILINEAR),
      'quality.jpg': reference,
      'large.tiff': reference.resize((700, 640)),
  }
  probabilities = {}
  for name, image in variants.items():
    image.save(tmp_path / name)
    probabilities[name] = verifier.verify(str(tmp_path / name), other)['probability']
  plain = verifier.verify(faces['a1'], other)['probability']
  # An opaque alpha channel changes nothing.
  assert probabilities['rgba.png'] == pytest.approx(plain, abs=1e-6)
  assert probabilities['gray.png'] == pytest.approx(probabilities['gray_as_rgb.png'], abs=1e-6)
  # Each variant reaches the network as nearly the same input, and lands far nearer the plain
  # image than another person's image is (the tiny model's scores barely move from 0.5, so the
  # embeddings are compared): a format read wrongly, or a size cropped wrongly, would not.
  embed = lambda path: verifier.encode(verifier.load_image(path)[None])[0]
  plain_input, plain_embedding = verifier.load_image(faces['a1']).astype(float), embed(faces['a1'])
  person_distance = np.linalg.norm(embed(faces['b1']) - plain_embedding)
  for name in variants:
    path = str(tmp_path / name)
    distance = np.linalg.norm(embed(path) - plain_embedding)
    if name == 'large.tiff':  # Another aspect ratio: the centred crop frames the face anew.
      assert distance < 0.5 * person_distance, name
    else:
      assert np.abs(verifier.load_image(path) - plain_input).mean() < 1.0, name
      assert distance < 0.1 * person_distance, name


def _bad_files(folder):
  missing = folder / 'missing.jpg'
  text = folder / 'notes.jpg'
  text.write_text('this is not an image\n')
  good = folder / 'good.jpg'
  fake_lfw.face_image(1, 1).save(good, quality=90)
  truncated = folder / 'truncated.jpg'
  truncated.write_bytes(good.read_bytes()[:2000])
  empty = folder / 'empty.png'
  empty.write_bytes(b'')
  return {'missing': missing, 'not an image': text, 'truncated': truncated, 'empty': empty,
          'folder': folder}


@pytest.mark.parametrize('kind', ['missing', 'not an image', 'truncated', 'empty', 'folder'])
def test_bad_image_gets_one_line_error_naming_it(workdir, faces, tmp_path, capsys, kind):
  bad = str(_bad_files(tmp_path)[kind])
  assert verify.main(['--workdir', workdir, '--aligned', faces['a1'], bad]) == 1
  captured = capsys.readouterr()
  assert captured.out == ''
  assert captured.err.count('\n') == 1 and bad in captured.err and 'Traceback' not in captured.err


def test_oversized_image_is_refused_before_decoding(workdir, faces, tmp_path, capsys):
  big = tmp_path / 'big.png'
  Image.new('RGB', (400, 300)).save(big)
  assert verify.main(['--workdir', workdir, '--aligned', '--max-pixels', '100000', faces['a1'],
                      str(big)]) == 1
  error = capsys.readouterr().err
  assert str(big) in error and '120,000 pixels' in error and error.count('\n') == 1
  with pytest.raises(image_io.ImageFileError, match='more than the limit'):
    image_io.read_rgb(str(big), max_pixels=119_999)
  assert image_io.read_rgb(str(big), max_pixels=120_000).shape == (300, 400, 3)


def test_decompression_bomb_is_refused(tmp_path):
  bomb = tmp_path / 'bomb.png'
  Image.new('1', (20_000, 20_000)).save(bomb)  # 400 M pixels in a few kB.
  with pytest.raises(image_io.ImageFileError, match='bomb.png'):
    image_io.read_rgb(str(bomb), max_pixels=10**12)


def test_usage_errors(workdir, faces, capsys):
  assert verify.main(['--workdir', workdir, '--aligned', faces['a1']]) == 1
  assert 'expected two images' in capsys.readouterr().err
  assert verify.main(['--workdir', str(faces['a1']) + '_nowhere', '--aligned', faces['a1'],
                      faces['a2']]) == 1
  assert 'no such workdir' in capsys.readouterr().err


def test_pairs_csv_scores_every_pair(workdir, verifier, faces, tmp_path, capsys):
  pairs = tmp_path / 'pairs.csv'
  relative = {k: os.path.relpath(v, tmp_path) for k, v in faces.items()}
  pairs.write_text(f"image_a,image_b\n{relative['a1']},{relative['a2']},1\n"
                   f"{relative['a1']},{relative['b1']},0\n{faces['a2']},{faces['b1']}\n")
  output = tmp_path / 'scores.csv'
  assert verify.main(['--workdir', workdir, '--aligned', '--pairs', str(pairs), '--output',
                      str(output)]) == 0
  assert 'scored 3 pairs' in capsys.readouterr().out
  with open(output) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 and [r['extra'] for r in rows] == ['1', '0', '']
  expected = [verifier.verify(faces['a1'], faces['a2']), verifier.verify(faces['a1'], faces['b1']),
              verifier.verify(faces['a2'], faces['b1'])]
  for row, want in zip(rows, expected):
    assert float(row['probability']) == pytest.approx(want['probability'], abs=1e-5)
    assert int(row['same']) == int(want['same'])


def test_pairs_csv_errors_name_file_and_line(workdir, faces, tmp_path, capsys):
  pairs = tmp_path / 'pairs.csv'
  pairs.write_text(f"{faces['a1']},{faces['a2']}\n{faces['a1']},missing.png\n")
  assert verify.main(['--workdir', workdir, '--aligned', '--pairs', str(pairs)]) == 1
  error = capsys.readouterr().err
  assert f'{pairs}:2:' in error and 'missing.png' in error and error.count('\n') == 1
  pairs.write_text(f"{faces['a1']}\n")
  assert verify.main(['--workdir', workdir, '--aligned', '--pairs', str(pairs)]) == 1
  assert f'{pairs}:1: expected' in capsys.readouterr().err


def test_scores_match_training_scores_with_and_without_flips(workdir):
  config, params = checkpointing.load_best(workdir)
  pairs = loading.load_pairs(config.data, 'view1_test')
  for tta_flip in (False, True):
    config.tta_flip = tta_flip
    verifier = inference.Verifier(config, params, threshold=0.5, batch_size=8)
    expected = train.network_probabilities(networks.build(config.model), params, pairs, config)
    np.testing.assert_allclose(verifier.score_pairs(pairs), expected, atol=1e-5)


def test_encode_embeds_model_shaped_and_raw_images(verifier, faces):
  raw = [image_io.read_rgb(faces['a1']), image_io.read_rgb(faces['b1'])]
  preprocessed = np.stack([verifier.preprocess(image) for image in raw])
  from_raw = verifier.encode(raw)
  assert from_raw.shape == (2, verifier.embedding_size) and from_raw.dtype == np.float32
  np.testing.assert_allclose(verifier.encode(preprocessed), from_raw, atol=1e-6)
  np.testing.assert_allclose(verifier.encode(preprocessed)[1],
                             verifier.encode(preprocessed[1:])[0], atol=1e-6)


def test_embed_exports_a_folder(workdir, verifier, tmp_path, capsys):
  folder = os.path.join(eval_workdir.fake_lfw_root(), 'lfw', 'lfw-deepfunneled')
  output = tmp_path / 'out' / 'emb.npz'
  assert embed.main(['--workdir', workdir, '--aligned', folder, '--output', str(output)]) == 0
  assert 'images ->' in capsys.readouterr().out
  saved = np.load(output)
  expected_paths = sorted(os.path.relpath(p, folder) for p in image_io.find_images(folder))
  assert saved['paths'].tolist() == expected_paths
  assert saved['embeddings'].shape == (len(expected_paths), verifier.embedding_size)
  first = verifier.encode([image_io.read_rgb(os.path.join(folder, expected_paths[0]))])
  np.testing.assert_allclose(saved['embeddings'][0], first[0], atol=1e-6)


def test_embed_fails_or_skips_bad_files(workdir, faces, tmp_path, capsys):
  folder = tmp_path / 'images'
  (folder / 'nested').mkdir(parents=True)
  Image.open(faces['a1']).save(folder / 'nested' / 'a.png')
  (folder / 'broken.jpg').write_text('not an image')
  output = tmp_path / 'emb.npz'
  assert embed.main(['--workdir', workdir, '--aligned', str(folder), '--output', str(output)]) == 1
  assert 'broken.jpg' in capsys.readouterr().err and not output.exists()
  assert embed.main(['--workdir', workdir, '--aligned', str(folder), '--output', str(output),
                     '--skip-bad']) == 0
  assert np.load(output)['paths'].tolist() == [os.path.join('nested', 'a.png')]
