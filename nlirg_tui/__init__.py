"""nlirg-workbench TUI and CLI: a client of trainer_core through the protocol and run folders. Never imports torch."""
