"""Shared fixtures: a fake LFW built once per test run, and real LFW when LFW_DIR is set."""

import functools
import hashlib
import http.server
import os
import pathlib
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import fake_lfw as fake_lfw_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


ROOT = pathlib.Path(__file__).parent.parent


def package_env(**extra) -> dict:
  """os.environ for a subprocess that imports lfw_siamese and the tests' helpers from this
  checkout, installed or not."""
  path = os.pathsep.join([str(ROOT), str(ROOT / 'tests')])
  return {**os.environ, 'PYTHONPATH': path, **extra}


def data_config(**overrides):
  """config.data of the base config, with overrides."""
  from lfw_siamese.configs import base  # pylint: disable=g-import-not-at-top
  data = base.get_config().data
  data.update(overrides)
  return data


@pytest.fixture(scope='session')
def fake_lfw(tmp_path_factory) -> pathlib.Path:
  """A fake LFW tree (deep-funneled layout, 30 people), shared by the test run: do not modify it.

  To change files, build your own with fake_lfw.make_fake_lfw(tmp_path, ...).
  """
  return fake_lfw_lib.make_fake_lfw(tmp_path_factory.mktemp('fake_lfw'))


@pytest.fixture(scope='session')
def _fake_tfds_dir(fake_lfw, tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp('fake_tfds')


@pytest.fixture
def fake_data_config(fake_lfw, _fake_tfds_dir):
  """config.data reading the fake LFW of the test run (TFDS dir and cache shared by the run)."""
  return data_config(lfw_dir=str(fake_lfw), tfds_dir=str(_fake_tfds_dir))


@pytest.fixture(scope='session')
def real_lfw_dir() -> pathlib.Path:
  """The real LFW folder from LFW_DIR; skips the test when LFW_DIR is unset."""
  if not os.environ.get('LFW_DIR'):
    pytest.skip('LFW_DIR is unset: point it at an extracted LFW (e.g. ../shared/lfw) to run this')
  return pathlib.Path(os.environ['LFW_DIR'])


@pytest.fixture(scope='session')
def _real_tfds_dir(real_lfw_dir, tmp_path_factory) -> str:
  """Prepares the real LFW TFDS datasets once per test run, in a temporary folder of its own."""
  from lfw_siamese.data import tfds_lfw  # pylint: disable=g-import-not-at-top
  tfds_dir = str(tmp_path_factory.mktemp('real_tfds'))
  started = time.perf_counter()
  tfds_lfw.prepare(data_config(lfw_dir=str(real_lfw_dir), tfds_dir=tfds_dir))
  print(f'\nreal LFW TFDS datasets ready in {tfds_dir} after '
        f'{time.perf_counter() - started:.1f} s', file=sys.stderr)
  return tfds_dir


@pytest.fixture
def real_data_config(real_lfw_dir, _real_tfds_dir):
  """config.data for real LFW (skips when LFW_DIR is unset), datasets prepared once per test run."""
  return data_config(lfw_dir=str(real_lfw_dir), tfds_dir=_real_tfds_dir)


class _Mirror(http.server.SimpleHTTPRequestHandler):
  """Serves a folder; paths under /forbidden/ answer 403 (as figshare sometimes does)."""

  def do_GET(self):
    if self.path.startswith('/forbidden/'):
      self.send_error(403)
    else:
      super().do_GET()

  def log_message(self, *args):
    pass


@pytest.fixture
def lfw_mirror(tmp_path, monkeypatch):
  """mirror(variant): sources' download mirror for the variant made a loopback HTTP server of a
  fake LFW's archive and pair lists; returns download(name, prefix='') -> sources.Download."""
  from lfw_siamese.data import sources  # pylint: disable=g-import-not-at-top
  servers = []

  def mirror(variant):
    served = fake_lfw_lib.make_fake_lfw(tmp_path / f'served_{variant}', variant=variant,
                                        archive=True)
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(_Mirror, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    url = f'http://127.0.0.1:{server.server_address[1]}'

    def download(name, prefix=''):
      return sources.Download(name, f'{url}/{prefix}{name}',
                              hashlib.sha256((served / name).read_bytes()).hexdigest())

    archive = fake_lfw_lib.VARIANT_FOLDERS[variant][1]
    monkeypatch.setattr(sources, 'ARCHIVE_DOWNLOADS', {variant: download(archive)})
    monkeypatch.setattr(sources, 'LIST_DOWNLOADS', tuple(
        download(name) for name in sources.PAIR_LISTS))
    monkeypatch.setattr(sources, 'DOWNLOAD_BACKOFF_S', 0.0)
    monkeypatch.delenv('LFW_DIR', raising=False)
    return download

  yield mirror
  for server in servers:
    server.shutdown()
