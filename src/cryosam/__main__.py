"""``python -m cryosam`` runs the command line."""

import sys

from cryosam.cli import main

sys.exit(main())
