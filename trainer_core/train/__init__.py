"""The training half of trainer_core: data, model, the loss step, the loop, telemetry, checkpoints, DeepSpeed.

Where to look first: `nlirg` (the weights and zones), `step` (the one loss step), `loop` (setup / fit /
validate / save), `telemetry` (what a `step` event carries, reduced on the device).
"""
