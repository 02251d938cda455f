"""Face detection and alignment: the weight loader, and the detector on LFW faces placed in canvases
where the face's position is known (tests with real faces read LFW_DIR)."""

import json
import os
import pickle

import joblib
import lz4.frame
import numpy as np
import pytest
from PIL import Image

import eval_workdir
from lfw_siamese import verify
from lfw_siamese.detection import align
from lfw_siamese.detection import detector as detector_lib
from lfw_siamese.detection import weights

FACE = ('Aaron_Peirsol', 1)  # A frontal face in LFW.
OTHER = ('Abdullah_Gul', 13)


def test_weights_load_with_their_pinned_shapes():
  for name in ('pnet', 'rnet', 'onet'):
    assert [a.shape for a in weights.load(name)] == weights.SHAPES[name]


def test_weight_loader_refuses_a_file_of_wrong_shapes_naming_it(tmp_path):
  path = tmp_path / 'pnet.lz4'
  joblib.dump([np.zeros((3, 3, 3, 12), np.float32)], path, compress='lz4')
  with pytest.raises(weights.WeightsError, match=f'{path}: sha256 .* not the pinned digest'):
    weights.read(str(path), 'pnet')
  with pytest.raises(weights.WeightsError, match=rf'{path}: the pnet weights should be arrays of '
                     r'shapes .*found \[\(3, 3, 3, 12\)\]'):
    weights.parse(path.read_bytes(), str(path), 'pnet')


def test_weight_loader_unpickles_numpy_arrays_and_nothing_else(tmp_path):
  class Payload:
    def __reduce__(self):
      return (os.system, ('echo pwned',))

  raw = lz4.frame.compress(pickle.dumps([Payload()]))
  with pytest.raises(weights.WeightsError, match=r'evil.lz4: .*refused to load (posix|os)\.system'):
    weights.parse(raw, 'evil.lz4', 'pnet')


def test_nms_drops_overlaps_of_higher_scores():
  rows = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [20, 20, 30, 30, 0.7]])
  kept = detector_lib.nms(rows, 0.5)
  np.testing.assert_array_equal(kept[:, 4], [0.9, 0.7])


def test_similarity_recovers_a_known_transform():
  angle, scale, shift = np.deg2rad(25), 1.7, np.array([30.0, -12.0])
  rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  matrix = align.similarity(align.TEMPLATE, align.TEMPLATE @ rotation.T + shift)
  np.testing.assert_allclose(matrix, np.column_stack([rotation, shift]), atol=1e-9)


def test_nothing_is_found_in_a_faceless_image():
  detector = detector_lib.load()
  noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
  flat = np.full((200, 200, 3), 90, np.uint8)
  assert detector.detect(noise) == [] and detector.detect(flat) == []
  with pytest.raises(align.NoFaceError, match='^flat.png: no face found'):
    align.align(flat, detector, name='flat.png')
  centred = align.align(flat, detector, no_face='center')
  assert centred.framing == 'center' and centred.crop is not None
  assert 'no face found' in centred.warnings('flat.png')[0]


@pytest.fixture(scope='module')
def lfw_faces(real_lfw_dir):
  read = lambda name, number: np.asarray(Image.open(
      real_lfw_dir / 'lfw-deepfunneled' / name / f'{name}_{number:04d}.jpg').convert('RGB'))
  return read(*FACE), read(*OTHER)


@pytest.fixture(scope='module')
def detector():
  return detector_lib.load()


def paste(canvas: np.ndarray, face: np.ndarray, left: int, top: int, side: int,
          angle: float = 0.0) -> np.ndarray:
  """The LFW crop resized to side x side (rotated by angle degrees) at (left, top); returns the
  (2, 3) map from crop to canvas coordinates."""
  picture = Image.fromarray(face).resize((side, side), Image.BILINEAR)
  if angle:
    picture = picture.rotate(angle, Image.BICUBIC, fillcolor=(128, 128, 128))
  canvas[top:top + side, left:left + side] = np.asarray(picture)
  scale = side / 250
  theta = np.deg2rad(angle)  # PIL turns counter-clockwise as seen, about the centre.
  rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
  centre = np.array([left, top]) + side / 2
  linear = scale * rotation
  return np.column_stack([linear, centre - linear @ np.array([125.0, 125.0])])


def test_box_and_landmarks_land_where_the_face_was_put(detector, lfw_faces):
  canvas = np.full((480, 640, 3), 128, np.uint8)
  to_canvas = paste(canvas, lfw_faces[0], left=300, top=120, side=150)
  faces = detector.detect(canvas)
  assert len(faces) == 1 and faces[0].confidence > 0.95
  expected = align.TEMPLATE @ to_canvas[:, :2].T + to_canvas[:, 2]
  # The template is the median over faces: one face's landmarks sit within a few pixels of it.
  np.testing.assert_array_less(np.linalg.norm(faces[0].landmarks - expected, axis=1), 8)
  x1, y1, x2, y2 = faces[0].box
  assert 300 < x1 < (x1 + x2) / 2 < x2 < 450 and 120 < y1 < (y1 + y2) / 2 < y2 < 270


def test_alignment_undoes_rotation(detector, lfw_faces):
  canvas = np.full((480, 640, 3), 128, np.uint8)
  paste(canvas, lfw_faces[0], left=200, top=100, side=250, angle=25)
  aligned = align.align(canvas, detector)
  assert aligned.framing == 'aligned' and aligned.crop.shape == (250, 250, 3)
  again = detector.detect(aligned.crop)[0]
  eyes = again.landmarks[1] - again.landmarks[0]
  assert abs(np.degrees(np.arctan2(eyes[1], eyes[0]))) < 3  # Level eyes.
  np.testing.assert_array_less(np.linalg.norm(again.landmarks - align.TEMPLATE, axis=1), 8)


def test_several_faces_largest_first_and_any_by_index(detector, lfw_faces):
  canvas = np.full((480, 640, 3), 128, np.uint8)
  paste(canvas, lfw_faces[0], left=20, top=100, side=150)
  paste(canvas, lfw_faces[1], left=300, top=60, side=300)
  largest = align.align(canvas, detector)
  assert len(largest.faces) == 2 and largest.face.box[0] > 300
  assert '2 faces found' in largest.warnings('group.jpg')[0]
  second = align.align(canvas, detector, face_index=1)
  assert second.face.box[0] < 170
  with pytest.raises(align.NoFaceError, match=r'^group.jpg: face 2 asked for, but only 2 found'):
    align.align(canvas, detector, face_index=2, name='group.jpg')


def test_a_tiny_face_is_flagged_unreliable(detector, lfw_faces):
  canvas = np.full((240, 320, 3), 128, np.uint8)
  paste(canvas, lfw_faces[0], left=100, top=80, side=70)
  aligned = align.align(canvas, detector)
  assert aligned.face.size < align.MIN_RELIABLE_FACE and aligned.small
  assert 'unreliable' in aligned.warnings('tiny.jpg')[-1]
  assert aligned.to_json()['small_face'] is True


def test_a_huge_photo_is_searched_downscaled_with_boxes_in_its_own_pixels(detector, lfw_faces):
  canvas = np.full((2400, 3200, 3), 128, np.uint8)
  paste(canvas, lfw_faces[0], left=2000, top=1000, side=600)
  faces = detector.detect(canvas)
  assert len(faces) == 1
  x1, y1, x2, y2 = faces[0].box
  assert 2000 < x1 < x2 < 2600 and 1000 < y1 < y2 < 1600


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return eval_workdir.trained_workdir(str(tmp_path_factory.mktemp('detect') / 'run'))


@pytest.mark.slow
def test_verify_detects_reports_saves_and_draws(workdir, lfw_faces, tmp_path, capsys):
  canvas = np.full((480, 640, 3), 128, np.uint8)
  paste(canvas, lfw_faces[0], left=300, top=120, side=200)
  photo, crop, blank = tmp_path / 'photo.png', tmp_path / 'crop.png', tmp_path / 'blank.png'
  Image.fromarray(canvas).save(photo)
  Image.fromarray(lfw_faces[1]).save(crop)
  Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(blank)
  saved, figure = tmp_path / 'aligned', tmp_path / 'pair.png'
  assert verify.main(['--workdir', workdir, '--json', '--save-aligned', str(saved), '--figure',
                      str(figure), str(photo), str(crop)]) == 0
  result = json.loads(capsys.readouterr().out)
  face = result['faces']['image_a']
  assert face['framing'] == 'aligned' and face['faces_found'] == 1 and face['confidence'] > 0.9
  assert set(face['landmarks']) == set(detector_lib.LANDMARK_NAMES) and len(face['box']) == 4
  assert sorted(os.listdir(saved)) == ['crop.png', 'photo.png']
  assert Image.open(saved / 'photo.png').size == (32, 32)  # The tiny config's input.
  assert Image.open(figure).size[0] > 400
  assert verify.main(['--workdir', workdir, str(blank), str(crop)]) == 1
  assert f'error: {blank}: no face found' in capsys.readouterr().err
  assert verify.main(['--workdir', workdir, '--no-face=center', str(blank), str(crop)]) == 0
  out = capsys.readouterr()
  assert 'no face found: centre crop' in out.out and 'centre crop' in out.err
