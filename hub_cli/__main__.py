"""`python -m hub_cli`: the same as the `hub` console script."""

import sys

from hub_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
