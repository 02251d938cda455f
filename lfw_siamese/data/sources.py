"""Where LFW comes from: LFW_DIR, TFDS's manual dir, or a checked download; folder or archive."""

import dataclasses
import hashlib
import io
import os
import pathlib
import re
import sys
import tarfile
import time
import urllib.error
import urllib.request

from PIL import Image
import tqdm

from lfw_siamese.data.lists import LfwDataError

IMAGE_SIDE = 250
PAIR_LISTS = ('pairsDevTrain.txt', 'pairsDevTest.txt', 'pairs.txt')
PEOPLE_LISTS = ('peopleDevTrain.txt', 'peopleDevTest.txt', 'people.txt')
_IMAGE_NAME = re.compile(r'^(?P<name>.+)_(?P<number>\d{4})\.jpg$')


@dataclasses.dataclass(frozen=True)
class Variant:
  """One alignment of LFW: where its images live upstream and how many channels they have."""
  name: str
  folders: tuple[str, ...]
  archives: tuple[str, ...]
  channels: int


VARIANTS = {
    'original': Variant('original', ('lfw',), ('lfw.tgz',), 3),
    'funneled': Variant('funneled', ('lfw_funneled',), ('lfw-funneled.tgz',), 3),
    'deepfunneled': Variant('deepfunneled', ('lfw-deepfunneled',), ('lfw-deepfunneled.tgz',), 3),
    'lfwa': Variant('lfwa', ('lfw2', 'lfwa'), ('lfwa.tar.gz', 'lfwa.tgz', 'lfw2.tgz'), 1),
}


@dataclasses.dataclass(frozen=True)
class Download:
  """A file on a mirror, with the sha256 it must have."""
  filename: str
  url: str
  sha256: str


# The UMass site is gone; these are the figshare mirrors scikit-learn and TFDS use.
ARCHIVE_DOWNLOADS = {
    'original': Download('lfw.tgz', 'https://ndownloader.figshare.com/files/5976018',
                         '055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0'),
    'funneled': Download('lfw-funneled.tgz', 'https://ndownloader.figshare.com/files/5976015',
                         'b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a'),
}
LIST_DOWNLOADS = (
    Download('pairsDevTrain.txt', 'https://ndownloader.figshare.com/files/5976012',
             '1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa'),
    Download('pairsDevTest.txt', 'https://ndownloader.figshare.com/files/5976009',
             '7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c'),
    Download('pairs.txt', 'https://ndownloader.figshare.com/files/5976006',
             'ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592'),
)
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_BACKOFF_S = 2.0
DOWNLOAD_TIMEOUT_S = 60.0


def variant(name: str) -> Variant:
  """The Variant called name, or an LfwDataError listing the valid names."""
  if name not in VARIANTS:
    raise LfwDataError(f"data.variant: expected one of {', '.join(VARIANTS)}, got {name!r}")
  return VARIANTS[name]


class FolderImages:
  """Images of an extracted folder: FOLDER/NAME/NAME_0001.jpg."""

  def __init__(self, folder: pathlib.Path):
    self.folder = folder

  def describe(self, name: str, number: int) -> str:
    return str(self.folder / name / f'{name}_{number:04d}.jpg')

  def read(self, name: str, number: int) -> bytes | None:
    try:
      return (self.folder / name / f'{name}_{number:04d}.jpg').read_bytes()
    except FileNotFoundError:
      return None

  def numbers(self) -> dict[str, list[int]]:
    """Every person in the folder and their image numbers."""
    found = {}
    for entry in os.scandir(self.folder):
      if entry.is_dir():
        numbers = []
        for image in os.scandir(entry.path):
          match = _IMAGE_NAME.match(image.name)
          if match and match['name'] == entry.name:
            numbers.append(int(match['number']))
        found[entry.name] = sorted(numbers)
    return found


class ArchiveImages:
  """Images of an upstream archive (TOP/NAME/NAME_0001.jpg), read into memory in one pass."""

  def __init__(self, archive: pathlib.Path):
    self.archive = archive
    self._images = {}
    try:
      with tarfile.open(archive, 'r:*') as tar:
        for member in tar:
          parts = member.name.split('/')
          match = _IMAGE_NAME.match(parts[-1]) if member.isfile() and len(parts) >= 2 else None
          if match and match['name'] == parts[-2]:
            self._images[(match['name'], int(match['number']))] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
      raise LfwDataError(f'{archive}: not a readable tar archive ({error})') from None
    if not self._images:
      raise LfwDataError(f'{archive}: holds no NAME/NAME_0001.jpg images')

  def describe(self, name: str, number: int) -> str:
    return f'{self.archive}:{name}/{name}_{number:04d}.jpg'

  def read(self, name: str, number: int) -> bytes | None:
    return self._images.get((name, number))

  def numbers(self) -> dict[str, list[int]]:
    found = {}
    for name, number in sorted(self._images):
      found.setdefault(name, []).append(number)
    return found


@dataclasses.dataclass
class LfwSource:
  """LFW as found: a variant's images (folder or archive) and the lists beside them."""
  variant: Variant
  directory: pathlib.Path
  images: FolderImages | ArchiveImages
  origin: str  # Where it was found, for messages and dataset metadata.
  _checked: set = dataclasses.field(default_factory=set)

  def list_path(self, filename: str) -> pathlib.Path | None:
    """The path of a pair or people list, or None when the source lacks it."""
    path = self.directory / filename
    return path if path.is_file() else None

  def checked_image(self, name: str, number: int, where: str) -> bytes:
    """The JPEG bytes of one image, after checking it exists, decodes and has the right shape.

    Args:
      name, number: the person and the 1-based image number.
      where: the list file and line that names the image, for the error message.
    """
    data = self.images.read(name, number)
    if data is None:
      raise LfwDataError(f'{where}: image {self.images.describe(name, number)} not found')
    if (name, number) not in self._checked:
      problem = image_problem(data, self.variant.channels)
      if problem:
        raise LfwDataError(f'{where}: image {self.images.describe(name, number)} {problem}')
      self._checked.add((name, number))
    return data


def image_problem(data: bytes, channels: int) -> str | None:
  """Why a stored image is unusable for a variant with `channels` channels, or None."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      image_format, mode, size = image.format, image.mode, image.size
  except Exception as error:  # PIL raises many types for corrupt data.
    return f'does not decode ({error})'
  if image_format != 'JPEG':
    return f'is {image_format}, expected JPEG'
  if size != (IMAGE_SIDE, IMAGE_SIDE):
    return f'is {size[0]}x{size[1]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}'
  image_channels = {'L': 1, 'RGB': 3}.get(mode)
  if image_channels != channels:
    expected = 'grayscale (1 channel)' if channels == 1 else 'RGB (3 channels)'
    return f'is mode {mode}, but the variant declares {expected}'
  return None


def tfds_data_dir(configured: str = '') -> pathlib.Path:
  """config.data.tfds_dir, else TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  chosen = configured or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'
  return pathlib.Path(chosen).expanduser()


def manual_dir(tfds_dir: pathlib.Path) -> pathlib.Path:
  """TFDS's manual download directory."""
  return tfds_dir / 'downloads' / 'manual'


def locate(variant_name: str, *, lfw_dir: str = '', tfds_dir: pathlib.Path,
           download: bool = True) -> LfwSource:
  """Finds LFW for a variant: lfw_dir (else LFW_DIR), the manual dir, then a download.

  Raises LfwDataError with where it looked and how to provide the data when nothing fits.
  """
  spec = variant(variant_name)
  looked = [] if lfw_dir or os.environ.get('LFW_DIR') else [
      'config.data.lfw_dir and LFW_DIR are unset']
  for origin, directory in _local_candidates(lfw_dir, tfds_dir):
    source, reason = _source_in(spec, directory, f'{origin} {directory}')
    if source:
      return source
    looked.append(f'{origin} {directory}: {reason}')
  if spec.name not in ARCHIVE_DOWNLOADS:
    looked.append(f"no download mirror for '{spec.name}' (only {', '.join(ARCHIVE_DOWNLOADS)})")
  elif not download:
    looked.append('downloads disabled')
  else:
    directory = download_dir(tfds_dir)
    try:
      for item in (ARCHIVE_DOWNLOADS[spec.name],) + LIST_DOWNLOADS:
        fetch(item, directory)
      source, reason = _source_in(spec, directory, f'download into {directory}')
      if source:
        return source
      looked.append(f'download into {directory}: {reason}')
    except LfwDataError as error:
      looked.append(str(error))
  images = f'{spec.folders[0]}/ (or {spec.archives[0]})'
  raise LfwDataError(
      f"No LFW data for variant '{spec.name}'. Looked at: {'; '.join(looked)}. To provide it, "
      f"set LFW_DIR (or config.data.lfw_dir) to a folder holding {images} and "
      f"{', '.join(PAIR_LISTS)} (optionally {', '.join(PEOPLE_LISTS)}), or put them in "
      f'{manual_dir(tfds_dir)}.')


def download_dir(tfds_dir: pathlib.Path) -> pathlib.Path:
  """Where downloaded archives and lists go."""
  return tfds_dir / 'downloads' / 'lfw_siamese'


def _local_candidates(lfw_dir: str, tfds_dir: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
  """(origin, folder) to look in, in order: lfw_dir, else LFW_DIR; then TFDS's manual dir."""
  if lfw_dir:
    candidates = [('config.data.lfw_dir', pathlib.Path(lfw_dir).expanduser())]
  elif os.environ.get('LFW_DIR'):
    candidates = [('LFW_DIR', pathlib.Path(os.environ['LFW_DIR']).expanduser())]
  else:
    candidates = []
  return candidates + [('TFDS manual dir', manual_dir(tfds_dir))]


def _images_in(spec: Variant, directory: pathlib.Path):
  """(the variant's image folder or archive in directory, None), else (None, why not)."""
  if not directory.is_dir():
    return None, 'no such folder'
  for folder in spec.folders:
    if (directory / folder).is_dir():
      return directory / folder, None
  for archive in spec.archives:
    if (directory / archive).is_file():
      return directory / archive, None
  return None, f"no {' or '.join([f + '/' for f in spec.folders] + list(spec.archives))}"


def _source_in(spec: Variant, directory: pathlib.Path, origin: str):
  """(LfwSource, None) when directory holds the variant and the pair lists, else (None, why)."""
  images, reason = _images_in(spec, directory)
  if images is None:
    return None, reason
  missing = [name for name in PAIR_LISTS if not (directory / name).is_file()]
  if missing:
    return None, f"has the images but not {', '.join(missing)}"
  found = FolderImages(images) if images.is_dir() else ArchiveImages(images)
  return LfwSource(spec, directory, found, origin), None


def local_copy(variant_name: str, *, lfw_dir: str = '',
               tfds_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
  """(folder, its images: a folder or archive) of the copy `locate` would use, found without
  downloading or reading images; None when there is no local copy."""
  spec = variant(variant_name)
  for _, directory in _local_candidates(lfw_dir, tfds_dir) + [('', download_dir(tfds_dir))]:
    images, _ = _images_in(spec, directory)
    if images is not None and all((directory / name).is_file() for name in PAIR_LISTS):
      return directory, images
  return None


def fetch(item: Download, directory: pathlib.Path) -> pathlib.Path:
  """Downloads item into directory (kept if already there with the right sha256), with retries."""
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / item.filename
  if path.is_file() and _sha256(path) == item.sha256:
    return path
  errors = []
  for attempt in range(DOWNLOAD_ATTEMPTS):
    if attempt:
      time.sleep(DOWNLOAD_BACKOFF_S * 2 ** (attempt - 1))
    partial = path.with_name(path.name + '.partial')
    try:
      print(f'Downloading {item.url} -> {path}', file=sys.stderr)
      digest = hashlib.sha256()
      with urllib.request.urlopen(item.url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
          open(partial, 'wb') as out, tqdm.tqdm(
              total=int(response.headers.get('Content-Length') or 0) or None, unit='B',
              unit_scale=True, desc=item.filename, leave=False, disable=None) as bar:
        while chunk := response.read(1 << 20):
          digest.update(chunk)
          out.write(chunk)
          bar.update(len(chunk))
      if digest.hexdigest() != item.sha256:
        errors.append(f'sha256 {digest.hexdigest()}, expected {item.sha256}')
        continue
      os.replace(partial, path)
      return path
    except (urllib.error.URLError, OSError, ValueError) as error:
      is_http = isinstance(error, urllib.error.HTTPError)
      errors.append(str(error) if is_http else str(getattr(error, 'reason', None) or error))
    finally:
      partial.unlink(missing_ok=True)
  raise LfwDataError(
      f"download of {item.filename} from {item.url} failed {DOWNLOAD_ATTEMPTS} times "
      f"({'; '.join(errors)})")


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return digest.hexdigest()
