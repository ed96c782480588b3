"""``python -m datadrill.cli``: the datadrill command."""

import os

from datadrill.cli.main import main

# Tables are read in logs and pasted into tickets: a stable width when run as a module.
os.environ.setdefault("COLUMNS", "120")
main()
