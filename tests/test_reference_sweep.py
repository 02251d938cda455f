"""The reference sweep driver: greedy one-at-a-time choice, shared points, skipped points, outputs."""

import importlib.util
import json
import pathlib

import pytest

_PATH = pathlib.Path(__file__).parents[1] / 'experiments' / 'reference_sweep.py'


@pytest.fixture
def sweep_module(monkeypatch):
  spec = importlib.util.spec_from_file_location('reference_sweep', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  trained = []

  def fake_train(config, workdir):
    """Validation accuracy peaks at 3 layers and 128 filters; test accuracy is val - 0.05."""
    trained.append(workdir)
    val = 0.6 - 0.05 * abs(len(config.model.conv_filters) - 3)
    val += 0.01 * (config.model.conv_filters[0] == 128)
    summary = {'val_acc': val, 'test_acc': val - 0.05, 'test_acc_at_0_5': 0.5, 'best_epoch': 1}
    pathlib.Path(workdir).mkdir(parents=True)
    (pathlib.Path(workdir) / 'summary.json').write_text(json.dumps(summary))
    return summary

  monkeypatch.setattr(module.train, 'train_and_evaluate', fake_train)
  return module, trained


def test_sweep_keeps_the_best_value_per_axis_and_trains_shared_points_once(sweep_module, tmp_path):
  module, trained = sweep_module
  rows, setting = module.sweep(tmp_path, image_size=96, num_epochs=1)
  assert setting['layers'] == 3 and setting['filters'] == 128
  # 5 layers of 7x7 VALID convs leave no pixels at 96x96, but layers=3 was kept, so all kernels run.
  points = sum(len(values) for _, values, _ in module.AXES)
  assert len(rows) == points
  assert len(trained) == len(set(trained)) == points - (len(module.AXES) - 1)  # Kept points recur.
  assert [r['chosen'] for r in rows if r['axis'] == 'layers'] == [False, True, False, False]
  module.write_outputs(tmp_path, rows, setting, 96, 1)
  table = (tmp_path / 'sweep.md').read_text()
  assert '| layers | 3 * | 0.600 | 0.550 |' in table
  assert (tmp_path / 'sweep.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  # A second sweep reads every summary back and trains nothing.
  trained.clear()
  assert module.sweep(tmp_path, image_size=96, num_epochs=1) == (rows, setting)
  assert not trained


def test_points_whose_feature_maps_vanish_are_skipped(sweep_module, tmp_path):
  module, trained = sweep_module
  setting = dict(module.START, layers=5, kernel=5)
  assert module.run_point(setting, tmp_path, image_size=96, num_epochs=1) is None
  assert not trained
