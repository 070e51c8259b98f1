"""The training half of trainer_core: the loop and one process's life at the top, four rooms below.

Where to look first: `loop` (setup / fit / validate / save; its moving state in `loop_state`), `lifecycle` (one
trainer process's life, any rank), `loss/` (`step.loss_step` and `weights.nlirg_weights`), `data/` (`prepare`,
the data path), `model/` (loading, checkpoints, resume), `telemetry/` (what a `step` event carries, reduced on
the device). docs/architecture.md has the whole map.
"""
