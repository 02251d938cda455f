"""Trains and scores: python -m lfw_siamese.main --workdir DIR [--config PATH] [--config.F=V]."""

import argparse
import json
import os
import sys

from lfw_siamese import checkpointing
from lfw_siamese import config_check
from lfw_siamese import config_flags
from lfw_siamese import host_memory
from lfw_siamese import sharding
from lfw_siamese import train
from lfw_siamese import workdir as workdir_lib
from lfw_siamese.data import loading
from lfw_siamese.data.lists import LfwDataError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
_PRINTED = ('variant', 'best_epoch', 'val_acc', 'threshold', 'test_acc', 'test_acc_at_0_5',
            'test_auc', 'train_seconds')


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m lfw_siamese.main', description=__doc__,
      epilog='--config.FIELD=VALUE overrides a field of the config (configs/base.py lists them).')
  parser.add_argument('--workdir', required=True, help='where config, checkpoints and metrics go')
  parser.add_argument('--config', default=_DEFAULT_CONFIG, help='training config file')
  parser.add_argument('--restart', action='store_true',
                      help='start over in a workdir that holds a run of another config')
  parser.add_argument('--coordinator_address',
                      default=os.environ.get('LFW_SIAMESE_COORDINATOR', ''),
                      help='host:port of process 0 in a multi-host run (env '
                           'LFW_SIAMESE_COORDINATOR); empty: one host')
  parser.add_argument('--num_processes', type=int,
                      default=int(os.environ.get('LFW_SIAMESE_NUM_PROCESSES', '1')),
                      help='processes (hosts) in a multi-host run (env LFW_SIAMESE_NUM_PROCESSES)')
  parser.add_argument('--process_id', type=int,
                      default=int(os.environ.get('LFW_SIAMESE_PROCESS_ID', '0')),
                      help='this process in a multi-host run (env LFW_SIAMESE_PROCESS_ID)')
  return parser


def _fail(message, exit_code: int = 2):
  """Exits with a one-line error on stderr."""
  print(f'lfw_siamese.main: error: {" ".join(str(message).split())}', file=sys.stderr)
  sys.exit(exit_code)


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  try:
    overrides, argv = config_flags.split_overrides(argv)
    args = _parser().parse_args(argv)
    config = config_flags.apply_overrides(config_check.load_file(args.config), overrides)
  except config_check.ConfigError as error:
    _fail(error)
  try:
    config_check.validate(config)
  except config_check.ConfigError as error:
    _fail(error, exit_code=1)
  host_memory.configure(config)  # Before JAX starts (see host_memory).
  if fallback := loading.fallback_variant(config.data):
    print(f'lfw_siamese.main: no LFW {config.data.variant} here (and no mirror to download it '
          f'from): this run downloads and uses the {fallback} variant', file=sys.stderr)
    config.data.variant = fallback
  sharding.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
  try:
    summary = train.train_and_evaluate(config, args.workdir, restart=args.restart)
  except (config_check.ConfigError, workdir_lib.WorkdirConflict, checkpointing.CheckpointError,
          LfwDataError) as error:
    _fail(error, exit_code=1)
  print(json.dumps({name: summary[name] for name in _PRINTED}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
