"""Trains and scores: python -m lfw_siamese.main --workdir DIR [--config PATH] [--config.F=V]."""

import json
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from lfw_siamese import checkpointing
from lfw_siamese import config_check
from lfw_siamese import host_memory
from lfw_siamese import sharding
from lfw_siamese import train
from lfw_siamese.lists import LfwDataError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')

_WORKDIR = flags.DEFINE_string('workdir', None, 'Where config, checkpoints and metrics go.',
                               required=True)


def _fail(message: str, exit_code: int = 2):
  """Exits with a one-line error on stderr."""
  print(f'lfw_siamese.main: error: {" ".join(str(message).split())}', file=sys.stderr)
  sys.exit(exit_code)


def _unknown_field(error: Exception) -> str:
  """'--config.FIELD: no such config field', from config_flags' KeyError or AttributeError."""
  message = str(error)
  field = re.search(r"'([\w.]+)", message)
  field = field.group(1) if field else message
  flag = next((arg.split('=')[0] for arg in sys.argv if arg.startswith('--config.')
               and arg.split('=')[0].endswith('.' + field)), field)
  suggestion = re.search(r'Did you mean "([\w.]+)"', message)
  hint = f'; did you mean {suggestion.group(1)}?' if suggestion else ''
  return f'{flag}: no such config field{hint} (lfw_siamese/configs/base.py lists every field)'


def _define_config_flag() -> flags.FlagHolder:
  # With --config=PATH, config_flags applies the --config.FIELD overrides here, at definition.
  try:
    return config_flags.DEFINE_config_file('config', _DEFAULT_CONFIG, 'Training config file.',
                                           lock_config=True)
  except (KeyError, AttributeError) as error:
    _fail(_unknown_field(error))


_CONFIG = _define_config_flag()
_RESTART = flags.DEFINE_bool('restart', False,
                             'Start over in a workdir that holds a run of another config.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', os.environ.get('LFW_SIAMESE_COORDINATOR', ''),
    'host:port of process 0 in a multi-host run (env LFW_SIAMESE_COORDINATOR); empty: one host.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', int(os.environ.get('LFW_SIAMESE_NUM_PROCESSES', '1')),
    'Processes (hosts) in a multi-host run (env LFW_SIAMESE_NUM_PROCESSES).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', int(os.environ.get('LFW_SIAMESE_PROCESS_ID', '0')),
    'This process in a multi-host run, 0..num_processes-1 (env LFW_SIAMESE_PROCESS_ID).')


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, but a bad flag or config override is one line on stderr, no usage dump."""
  try:
    remaining = flags.FLAGS(argv)
  except (KeyError, AttributeError) as error:
    _fail(_unknown_field(error))
  except Exception as error:  # pylint: disable=broad-except
    _fail(error)  # A bad flag, or a config file that does not load.
  try:
    _CONFIG.value.keys()  # A config file that failed to load raises on first use.
  except Exception as error:  # pylint: disable=broad-except
    _fail(f'--config: {error}')
  return remaining


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Keep JAX's INFO lines (backends found) off stderr.
  host_memory.configure(_CONFIG.value)  # Before JAX starts (see host_memory).
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, restart=_RESTART.value)
  except (config_check.ConfigError, checkpointing.WorkdirConflict, LfwDataError) as error:
    _fail(error, exit_code=1)
  print(json.dumps({name: summary[name] for name in (
      'best_epoch', 'val_acc', 'threshold', 'test_acc', 'test_acc_at_0_5', 'test_auc',
      'train_seconds')}))
  return 0


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
