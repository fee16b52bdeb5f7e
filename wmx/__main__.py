"""``python -m wmx``: the same as the ``wmx`` command."""

import sys

from wmx.cli import main

sys.exit(main())
