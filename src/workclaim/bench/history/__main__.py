"""`python -m workclaim.bench.history`: check history files (see `command.main`)."""

from workclaim.bench.history.command import main

if __name__ == "__main__":
    raise SystemExit(main())
