"""`python -m spot_tutorial ...` is the `spot` command (see spot_tutorial.cli)."""

import sys

from .cli import main

sys.exit(main())
