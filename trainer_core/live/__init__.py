"""The client half of trainer_core: everything needed to find, start, watch and steer a run, nothing that trains.

`protocol` (the one vocabulary of the live link, docs/design.md §4; `shapes` checks messages against it), `sockets`
(where a run's socket lives and who is on the other end), `server` (the socket server inside the trainer,
rank 0), `control` (commands applied at step boundaries), `events` (the append-only event log; `line_limit`
keeps its lines within the protocol's limit), `rundir` (the run directory contract, docs/design.md §3), `runs` (run
discovery), `processes` (is a run's process alive), `client` (a small synchronous socket client) and `launch`
(creating a run and starting its trainer). Imports no torch: the CLI and the TUI use all of it (import-linter
checks this).
"""
