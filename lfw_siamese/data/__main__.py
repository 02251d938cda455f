"""python -m lfw_siamese.data: see data/cli.py."""

import sys

from lfw_siamese.data import cli

sys.exit(cli.main())
