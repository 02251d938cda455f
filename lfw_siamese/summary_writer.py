"""Per-epoch metrics to WORKDIR/metrics.jsonl and TensorBoard event files, without TensorFlow."""

import json

from tensorboardX import SummaryWriter

from lfw_siamese import files
from lfw_siamese import workdir as workdir_lib


class MetricWriter:
  """Writes on process 0 only; every other process gets a writer that does nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._workdir = workdir
    self._tensorboard = (SummaryWriter(workdir_lib.path(workdir, workdir_lib.TENSORBOARD))
                         if enabled else None)

  def write_history(self, history: list[dict]) -> None:
    """Rewrites metrics.jsonl, one JSON object per finished epoch (resumes never duplicate)."""
    if self._tensorboard is None:
      return
    path = workdir_lib.path(self._workdir, workdir_lib.METRICS)
    with files.atomic_write(path) as f:
      f.writelines(json.dumps(record) + '\n' for record in history)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._tensorboard is None:
      return
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)
    self._tensorboard.flush()

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()
