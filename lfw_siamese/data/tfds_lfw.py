"""TFDS builders (array_record, no TensorFlow) for LFW pairs and identity-labelled images.

`LfwPairs` holds View 1 (`view1_train` = pairsDevTrain, `view1_test` = pairsDevTest) and the ten
View 2 folds of pairs.txt (`fold0`..`fold9`); `LfwPeople` holds every image with its person, split
the same way along peopleDevTrain / peopleDevTest / people.txt, so a training set never contains a
test person. One builder config per variant (original, funneled, deepfunneled, lfwa). Images are
stored as the upstream JPEG bytes; read them back with `read_split` (undecoded) or a data source.
"""

import contextlib
import fcntl
import functools
import hashlib
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Callable, Iterator

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from lfw_siamese.data import lists
from lfw_siamese.data import sources
from lfw_siamese.data.lists import LfwDataError

NUM_FOLDS, PAIR_SPLITS = lists.NUM_FOLDS, lists.PAIR_SPLITS
# Which list file holds each split: (file, fold index within it).
_PAIR_LIST_OF_SPLIT = {'view1_train': ('pairsDevTrain.txt', 0),
                       'view1_test': ('pairsDevTest.txt', 0),
                       **{f'fold{k}': ('pairs.txt', k) for k in range(NUM_FOLDS)}}
_PEOPLE_LIST_OF_SPLIT = {'view1_train': ('peopleDevTrain.txt', 0),
                         'view1_test': ('peopleDevTest.txt', 0),
                         **{f'fold{k}': ('people.txt', k) for k in range(NUM_FOLDS)}}
_CITATION = """@TechReport{LFWTech,
  author = {Gary B. Huang and Manu Ramesh and Tamara Berg and Erik Learned-Miller},
  title = {Labeled Faces in the Wild: A Database for Studying Face Recognition in Unconstrained
           Environments},
  institution = {University of Massachusetts, Amherst},
  year = {2007}, number = {07-49}}"""
_IMAGE_FEATURES = ('image1', 'image2', 'image')


class _LfwBuilder(tfds.core.GeneratorBasedBuilder):
  """What the pairs and people builders share: configs, the source, metadata."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pairs, folds and people splits; upstream JPEG bytes.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=name, description=f'LFW {name} images ({spec.channels} ch.)')
      for name, spec in sources.VARIANTS.items()
  ]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup goes through importlib resources, which fails for some installs.
    return epath.Path(__file__)

  def __init__(self, *, locate_source: Callable[[], sources.LfwSource] | None = None, **kwargs):
    self._locate_source = locate_source
    self._tfds_dir = pathlib.Path(kwargs['data_dir'])
    super().__init__(**kwargs)

  @property
  def channels(self) -> int:
    return sources.VARIANTS[self.builder_config.name].channels

  def _image(self):
    return tfds.features.Image(shape=(sources.IMAGE_SIDE, sources.IMAGE_SIDE, self.channels),
                               encoding_format='jpeg')

  def _dataset_info(self, features: dict) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=tfds.features.FeaturesDict(features),
        homepage='http://vis-www.cs.umass.edu/lfw/', citation=_CITATION,
        metadata=tfds.core.MetadataDict(), disable_shuffling=True)

  def _source(self) -> sources.LfwSource:
    if self._locate_source is None:
      raise LfwDataError(f'{self.data_dir}: dataset not prepared and no LFW source given')
    source = self._locate_source()
    fingerprint = source_fingerprint(
        self.builder_config.name, lfw_dir=str(source.directory), tfds_dir=self._tfds_dir)
    self.info.metadata.update(
        variant=self.builder_config.name, origin=source.origin,
        source_digest=fingerprint[1] if fingerprint else '',
        lists={name: _file_sha256(source.list_path(name))
               for name in sources.PAIR_LISTS + sources.PEOPLE_LISTS if source.list_path(name)})
    return source


class LfwPairs(_LfwBuilder):
  """LFW pairs: View 1 train/test and the ten View 2 folds, both images of each pair."""

  def _info(self) -> tfds.core.DatasetInfo:
    return self._dataset_info({
        'image1': self._image(), 'image2': self._image(),
        'label': tfds.features.ClassLabel(names=['different', 'same']),
        'name1': tfds.features.Text(), 'number1': np.int32,
        'name2': tfds.features.Text(), 'number2': np.int32,
    })

  def _split_generators(self, dl_manager):
    del dl_manager  # The source is found (or downloaded) by sources.locate.
    source = self._source()
    folds = {name: lists.read_pairs(source.list_path(name)) for name in sources.PAIR_LISTS}
    for name, expected in (('pairsDevTrain.txt', 1), ('pairsDevTest.txt', 1),
                           ('pairs.txt', NUM_FOLDS)):
      if len(folds[name]) != expected:
        raise LfwDataError(f'{source.list_path(name)}:1: expected {expected} fold(s), '
                           f'got {len(folds[name])}')
    return {split: self._generate_examples(source, source.list_path(name), folds[name][fold])
            for split, (name, fold) in _PAIR_LIST_OF_SPLIT.items()}

  def _generate_examples(self, source, path, pairs):
    for index, pair in enumerate(pairs):
      where = f'{path}:{pair.line}'
      yield index, {
          'image1': source.checked_image(pair.name1, pair.number1, where),
          'image2': source.checked_image(pair.name2, pair.number2, where),
          'label': pair.label, 'name1': pair.name1, 'number1': pair.number1,
          'name2': pair.name2, 'number2': pair.number2,
      }


class LfwPeople(_LfwBuilder):
  """LFW images labelled by person, split by peopleDevTrain/peopleDevTest and people.txt folds."""

  def _info(self) -> tfds.core.DatasetInfo:
    return self._dataset_info(
        {'image': self._image(), 'name': tfds.features.Text(), 'number': np.int32})

  def _split_generators(self, dl_manager):
    del dl_manager
    source = self._source()
    if all(source.list_path(name) for name in sources.PEOPLE_LISTS):
      people = {name: lists.read_people(source.list_path(name)) for name in sources.PEOPLE_LISTS}
      if len(people['people.txt']) != NUM_FOLDS:
        raise LfwDataError(f"{source.list_path('people.txt')}:1: expected {NUM_FOLDS} folds, "
                           f"got {len(people['people.txt'])}")
      self.info.metadata['people_lists'] = 'given'
      return {split: self._generate_examples(source, source.list_path(name), people[name][fold])
              for split, (name, fold) in _PEOPLE_LIST_OF_SPLIT.items()}
    # Downloads have no people lists: take the people each split's pairs name, all their images.
    self.info.metadata['people_lists'] = 'derived from the pair lists'
    available = source.images.numbers()
    generators = {}
    for split, (name, fold) in _PAIR_LIST_OF_SPLIT.items():
      path = source.list_path(name)
      pairs = lists.read_pairs(path)[fold]
      first_line = {}
      for pair in pairs:
        first_line.setdefault(pair.name1, pair.line)
        first_line.setdefault(pair.name2, pair.line)
      people = [lists.Person(person, max(available.get(person, [0])), line)
                for person, line in sorted(first_line.items())]
      generators[split] = self._generate_examples(source, path, people)
    return generators

  def _generate_examples(self, source, path, people):
    index = 0
    for person in people:
      for number in range(1, person.count + 1):
        image = source.checked_image(person.name, number, f'{path}:{person.line}')
        yield index, {'image': image, 'name': person.name, 'number': number}
        index += 1


BUILDERS = {'pairs': LfwPairs, 'people': LfwPeople}


def builder(kind: str, data_config: ml_collections.ConfigDict) -> _LfwBuilder:
  """The prepared builder ('pairs' or 'people') for data_config, preparing it on first use."""
  return prepare(data_config, kinds=(kind,))[kind]


def prepare(data_config: ml_collections.ConfigDict,
            kinds=('pairs', 'people')) -> dict[str, _LfwBuilder]:
  """Prepares (once) and returns the builders named in kinds, sharing one located source.

  Preparation happens under a file lock, so processes that start together prepare it once.
  """
  spec = sources.variant(data_config.variant)
  tfds_dir = sources.tfds_data_dir(data_config.tfds_dir)
  located = []

  def locate_source():
    if not located:
      started = time.perf_counter()
      located.append(sources.locate(spec.name, lfw_dir=data_config.lfw_dir, tfds_dir=tfds_dir))
      _log(f'LFW {spec.name} found at {located[0].origin} '
           f'({time.perf_counter() - started:.1f} s)')
    return located[0]

  def make(kind):
    return BUILDERS[kind](config=spec.name, data_dir=tfds_dir, file_format='array_record',
                          locate_source=locate_source)

  builders = {kind: make(kind) for kind in kinds}
  if all(_is_prepared(b) and not _stale(b, data_config, tfds_dir) for b in builders.values()):
    return builders
  tfds_dir.mkdir(parents=True, exist_ok=True)
  with _file_lock(tfds_dir / '.lfw_siamese.lock'):
    for kind in kinds:
      builders[kind] = make(kind)  # Another process may have prepared it meanwhile.
      if _is_prepared(builders[kind]) and (reason := _stale(builders[kind], data_config,
                                                            tfds_dir)):
        _log(f'{reason}: preparing it again')
        shutil.rmtree(builders[kind].data_path)
        builders[kind] = make(kind)
      if not _is_prepared(builders[kind]):
        locate_source()  # Fails with where it looked before TFDS starts writing.
        started = time.perf_counter()
        _log(f'Preparing TFDS {builders[kind].name}/{spec.name} in {tfds_dir} ...')
        with _quiet_tfds():
          builders[kind].download_and_prepare()
        builders[kind] = make(kind)
        _log(f'Prepared {builders[kind].name}/{spec.name} '
             f'in {time.perf_counter() - started:.1f} s')
  return builders


def is_prepared(kind: str, data_config: ml_collections.ConfigDict) -> bool:
  """Whether the dataset ('pairs' or 'people') of data_config's variant is prepared already."""
  return _is_prepared(BUILDERS[kind](config=data_config.variant, file_format='array_record',
                                     data_dir=sources.tfds_data_dir(data_config.tfds_dir)))


def read_split(builder: _LfwBuilder, split: str) -> list[dict[str, Any]]:
  """Every example of a split, images as undecoded JPEG bytes and names as str."""
  if split not in builder.info.splits:
    raise LfwDataError(
        f"split: expected one of {', '.join(builder.info.splits)}, got {split!r}")
  decoders = {key: tfds.decode.SkipDecoding() for key in _IMAGE_FEATURES
              if key in builder.info.features}
  source = builder.as_data_source(split, decoders=decoders)
  examples = source.__getitems__(range(len(source)))
  for example in examples:
    for key, value in example.items():
      if isinstance(value, bytes) and key not in _IMAGE_FEATURES:
        example[key] = value.decode('utf-8')
  return examples


def fingerprint(builder: _LfwBuilder) -> str:
  """A short hash of where and what the prepared data is, to key caches built from it."""
  digest = hashlib.sha256(str(builder.data_dir).encode())
  for name in ('dataset_info.json', 'metadata.json'):
    path = pathlib.Path(builder.data_dir) / name
    if path.exists():
      digest.update(path.read_bytes())
  return digest.hexdigest()[:12]


def source_fingerprint(variant_name: str, *, lfw_dir: str = '',
                      tfds_dir: pathlib.Path) -> tuple[str, str] | None:
  """(folder, digest) of `sources.local_copy`, or None: a digest of the lists' bytes and every image
  file's name and size (an archive's size and time), cheap to recompute."""
  if (found := sources.local_copy(variant_name, lfw_dir=lfw_dir, tfds_dir=tfds_dir)) is None:
    return None
  directory, images = found
  digest = hashlib.sha256()
  for name in sources.PAIR_LISTS + sources.PEOPLE_LISTS:
    if (directory / name).is_file():
      digest.update(f'{name}\0'.encode() + (directory / name).read_bytes())
  if images.is_dir():
    for person in sorted(os.scandir(images), key=lambda entry: entry.name):
      if person.is_dir():
        for image in sorted(os.scandir(person.path), key=lambda entry: entry.name):
          digest.update(f'{person.name}/{image.name}:{image.stat().st_size}\0'.encode())
  else:
    stat = images.stat()
    digest.update(f'{images.name}:{stat.st_size}:{stat.st_mtime_ns}'.encode())
  return str(directory.resolve()), digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _local_fingerprint(variant: str, lfw_dir: str, lfw_dir_env: str, tfds_dir: pathlib.Path):
  del lfw_dir_env  # Part of the cache key: LFW_DIR decides where an empty lfw_dir looks.
  return source_fingerprint(variant, lfw_dir=lfw_dir, tfds_dir=tfds_dir)


def _stale(builder: _LfwBuilder, data_config, tfds_dir: pathlib.Path) -> str | None:
  """Why a prepared dataset no longer matches the local copy of LFW it would be prepared from,
  or None (it matches, or there is no local copy to compare with)."""
  current = _local_fingerprint(builder.builder_config.name, data_config.lfw_dir,
                               os.environ.get('LFW_DIR', ''), tfds_dir)
  if current is None or builder.info.metadata.get('source_digest') == current[1]:
    return None
  recorded = builder.info.metadata.get('origin', 'an unrecorded copy')
  return (f'{builder.data_path}: prepared from {recorded}, but LFW at {current[0]} holds other '
          'lists or images')


def _is_prepared(builder: _LfwBuilder) -> bool:
  # Checking dataset_info.json first keeps TFDS from warning about folders it has not written.
  return (builder.data_path / 'dataset_info.json').exists() and builder.is_prepared()


def _file_sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _log(message: str):
  print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
  with open(path, 'a') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
  """TFDS prints progress to stdout; keep stdout for our results (JSON lines)."""
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(sys.stderr):
      yield
  finally:
    tfds.display_progress_bar(True)

