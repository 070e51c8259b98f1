"""Set-up tools run by ./run (not part of the installed packages)."""
