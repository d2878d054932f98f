"""Run mailctl as ``python -m mailctl``."""

from mailctl.cli.main import main

main()
