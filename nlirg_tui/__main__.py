"""`python -m nlirg_tui` is the `nlirg` command (what `nlirg serve` runs for each browser tab)."""

from nlirg_tui.cli import main

if __name__ == "__main__":
    main()
