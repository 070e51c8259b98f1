"""The training half of trainer_core: data, model, the loss step, the loop, telemetry, checkpoints, DeepSpeed.

Where to look first: `nlirg` (the weights and zones), `step` (the one loss step), `loop` (setup / fit /
validate / save; its moving state in `loop_state`), `telemetry` (what a `step` event carries, reduced on the
device), `lifecycle` (one trainer process's life, any rank). docs/architecture.md has the whole map.
"""
