"""`python -m spot_tutorial ...` is the `spot` command (see spot_tutorial.apps.cli)."""

import sys

from spot_tutorial.apps.cli import main

sys.exit(main())
