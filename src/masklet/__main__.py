"""`python -m masklet`: the `masklet` command."""

import sys

from masklet.cli import main

sys.exit(main())
