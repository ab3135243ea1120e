"""`python -m trainer.evaluate`, the name earlier notes and issues use: `python -m evaluation`."""

import sys

from evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
