"""``python -m alsnet``: the command line."""

import sys

from alsnet.cli.main import main

sys.exit(main())
