"""Keeps a failed checkpoint read to the one line that reports it.

Orbax logs a failed read at length and leaves the checkpoint's other reads in flight; each then
prints its own copy of the error (a hundred lines of TensorStore spec) as its coroutine is
collected, or a traceback as it lands on the event loop Orbax has closed, at any moment until
the process ends. `quiet_stderr` mutes file descriptor 2 around a read; after a failure,
`forget_the_rest` drops those leftovers for the rest of the process, and nothing else.
"""

import atexit
import contextlib
import gc
import io
import os
import sys
import time
from typing import Iterator

_LEFTOVER_MARKS = ('Event loop is closed', '_read_array_index_and_device_put', 'TensorStore(')


@contextlib.contextmanager
def quiet_stderr(linger_s: float = 0.0) -> Iterator[None]:
  """Sends file descriptor 2 to /dev/null meanwhile, and for linger_s seconds more."""
  sys.stderr.flush()
  saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(quiet, 2)
  try:
    yield
  finally:
    if linger_s:
      time.sleep(linger_s)
      gc.collect()  # Collected now, the leftovers' coroutines print into the quiet.
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(quiet)


class _WithoutLeftovers(io.TextIOBase):
  """A text stream that passes everything on but the tracebacks of a failed read's leftovers."""

  def __init__(self, stream):
    super().__init__()
    self._stream, self._partial, self._held = stream, '', []

  def write(self, text: str) -> int:
    lines = (self._partial + text).splitlines(keepends=True)
    self._partial = lines.pop() if lines and not lines[-1].endswith('\n') else ''
    for line in lines:
      if self._held or line.startswith(('Traceback (most recent call last)', 'Exception ignored')):
        self._held.append(line)
        if not line[:1].isspace() and not line.startswith(('Traceback', 'Exception ignored')):
          block, self._held = ''.join(self._held), []  # The exception's own line ends it.
          if not any(mark in block for mark in _LEFTOVER_MARKS):
            self._stream.write(block)
      else:
        self._stream.write(line)
    return len(text)

  def flush(self) -> None:
    self._stream.flush()

  def __getattr__(self, name):
    return getattr(self._stream, name)


def _quiet_at_exit() -> None:
  sys.stderr.flush()
  os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def forget_the_rest() -> None:
  """After a failed read: its leftovers stay off stderr until the process ends."""
  with quiet_stderr(linger_s=0.5):  # Local reads mostly land within it.
    pass
  if not isinstance(sys.stderr, _WithoutLeftovers):
    sys.stderr = _WithoutLeftovers(sys.stderr)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None if any(
        mark in repr(unraisable.object) for mark in _LEFTOVER_MARKS) else previous_hook(unraisable)
    atexit.register(_quiet_at_exit)
