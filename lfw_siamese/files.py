"""Files written whole or not at all: a reader, or a run killed meanwhile, never sees half of one."""

import contextlib
import json
import os
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **open_args) -> Iterator[Any]:
  """Opens a file beside `path` for writing, which replaces `path` once it is complete."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  partial = os.path.join(directory, f'.{os.path.basename(path)}.{os.getpid()}.partial')
  try:
    with open(partial, mode, **open_args) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(partial, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(partial)


def write_json(path: str, data: Any) -> None:
  """Writes data as indented JSON, atomically."""
  with atomic_write(path) as f:
    json.dump(data, f, indent=2)
