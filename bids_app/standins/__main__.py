"""``python -m bids_app.standins``."""

import sys

from . import main

sys.exit(main())
