"""python -m fastrnn.cli: the `fastrnn` command."""

import sys

from . import main

sys.exit(main())
