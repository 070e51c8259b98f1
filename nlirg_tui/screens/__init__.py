"""Screens (Runs, Run, Compare) and the modal dialogs."""
