"""``python -m alsnet``: the command line."""

import sys

from alsnet.cli import main

sys.exit(main())
