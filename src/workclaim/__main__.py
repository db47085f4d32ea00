"""`python -m workclaim` runs the command line."""

from workclaim.cli import main

main()
