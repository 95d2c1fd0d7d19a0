"""``python -m cryosam`` runs the command line."""

import sys

from cryosam.cli.main import main

sys.exit(main())
