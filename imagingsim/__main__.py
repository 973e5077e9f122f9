"""``python -m imagingsim`` runs the command line."""

import sys

from imagingsim.cli import main

sys.exit(main())
