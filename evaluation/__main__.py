"""`python -m evaluation`: see `evaluation.evaluate`."""

import sys

from evaluation.evaluate import main

sys.exit(main())
