"""MTCNN's weight arrays, read from the files the `mtcnn` package ships, without importing it.

The package (MIT licence) keeps each network's Keras weights as a joblib pickle of a list of numpy
arrays, lz4-compressed, under mtcnn/assets/weights/. Importing `mtcnn` needs TensorFlow, so the
files are located through the installed distribution's metadata, checked against pinned sha256
digests, and unpickled by an unpickler that admits numpy's array classes alone.
"""

import hashlib
import importlib.metadata
import io
import pickle

import lz4.frame
import numpy as np

DISTRIBUTION = 'mtcnn'
# The digests of mtcnn 1.0.0's files; another release's weights are refused until checked here.
SHA256 = {
    'pnet': 'ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5',
    'rnet': 'cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee',
    'onet': '94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3',
}
# Each network's arrays in the order Keras' get_weights() lists them.
SHAPES = {
    'pnet': [(3, 3, 3, 10), (10,), (1, 1, 10), (3, 3, 10, 16), (16,), (1, 1, 16),
             (3, 3, 16, 32), (32,), (1, 1, 32), (1, 1, 32, 4), (4,), (1, 1, 32, 2), (2,)],
    'rnet': [(3, 3, 3, 28), (28,), (1, 1, 28), (3, 3, 28, 48), (48,), (1, 1, 48),
             (2, 2, 48, 64), (64,), (1, 1, 64), (576, 128), (128,), (128,), (128, 4), (4,),
             (128, 2), (2,)],
    'onet': [(3, 3, 3, 32), (32,), (1, 1, 32), (3, 3, 32, 64), (64,), (1, 1, 64),
             (3, 3, 64, 64), (64,), (1, 1, 64), (2, 2, 64, 128), (128,), (1, 1, 128),
             (1152, 256), (256,), (256,), (256, 4), (4,), (256, 10), (10,), (256, 2), (2,)],
}


class WeightsError(RuntimeError):
  """Weights that cannot be used; the message names the file and what was wrong."""


class _ArrayRecord:
  """Stands for joblib's NumpyArrayWrapper: the header of an array whose bytes follow it."""

  def __setstate__(self, state):
    self.__dict__.update(state)


class _ArrayUnpickler(pickle._Unpickler):  # The pure-Python unpickler, whose BUILD can be hooked.
  """Reads joblib's array pickles, admitting numpy's ndarray and dtype and nothing else."""

  _ALLOWED = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
              ('joblib.numpy_pickle', 'NumpyArrayWrapper'): _ArrayRecord}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refused to load {module}.{name}')
    return self._ALLOWED[(module, name)]

  def load_build(self):
    super().load_build()
    if isinstance(self.stack[-1], _ArrayRecord):
      self.stack.append(self._read_array(self.stack.pop()))

  dispatch = dict(pickle._Unpickler.dispatch)
  dispatch[pickle.BUILD[0]] = load_build

  def _read_array(self, record: _ArrayRecord) -> np.ndarray:
    """The array's raw bytes, written after its header (and an alignment pad), as joblib does."""
    dtype = np.dtype(record.dtype)
    if dtype.hasobject or record.subclass is not np.ndarray:
      raise pickle.UnpicklingError(f'refused an array of {dtype} / {record.subclass}')
    if getattr(record, 'numpy_array_alignment_bytes', None) is not None:
      self.read(int.from_bytes(self.read(1), 'little'))
    count = int(np.prod(record.shape))
    array = np.frombuffer(self.read(count * dtype.itemsize), dtype, count)
    order = 'F' if record.order == 'F' else 'C'
    return array.reshape(record.shape, order=order).copy()


def locate(name: str) -> str:
  """The path of the installed `mtcnn` package's weight file for network `name`."""
  try:
    distribution = importlib.metadata.distribution(DISTRIBUTION)
  except importlib.metadata.PackageNotFoundError:
    raise WeightsError(f'the face detector needs the {DISTRIBUTION!r} package, which ships its '
                       f'weights: pip install {DISTRIBUTION}==1.0.0') from None
  return str(distribution.locate_file(f'mtcnn/assets/weights/{name}.lz4'))


def read(path: str, name: str) -> list[np.ndarray]:
  """Network `name`'s float32 arrays from `path`, checked against its digest and shapes."""
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as error:
    raise WeightsError(f'{path}: cannot read the {name} weights ({error.strerror})') from None
  digest = hashlib.sha256(raw).hexdigest()
  if digest != SHA256[name]:
    raise WeightsError(f'{path}: sha256 {digest} is not the pinned digest of the {name} weights')
  return parse(raw, path, name)


def parse(raw: bytes, path: str, name: str) -> list[np.ndarray]:
  """Decompresses and unpickles `raw`, then checks that it holds the arrays network `name` needs."""
  try:
    arrays = _ArrayUnpickler(io.BytesIO(lz4.frame.decompress(raw))).load()
  except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
    raise WeightsError(f'{path}: not a weights file of the expected kind ({error})') from None
  shapes = [np.shape(a) for a in arrays] if isinstance(arrays, list) else None
  if shapes != SHAPES[name]:
    raise WeightsError(f'{path}: the {name} weights should be arrays of shapes {SHAPES[name]}, '
                       f'found {shapes if shapes is not None else type(arrays).__name__}')
  return [np.asarray(a, np.float32) for a in arrays]


def load(name: str) -> list[np.ndarray]:
  """The installed package's weights for 'pnet', 'rnet' or 'onet'."""
  return read(locate(name), name)
