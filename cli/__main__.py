"""``python -m facelm.cli``: the same as the ``facelm`` console script."""
import sys

from facelm.cli.app import main

sys.exit(main())
