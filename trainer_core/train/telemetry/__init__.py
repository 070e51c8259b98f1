"""What a run reports: `step_stats` (a `step` event's numbers, reduced on the device, one host sync per logged
step), `flops` (MFU), `flagged` (samples with zeroed tokens, for the Inspector), `tensorboard` and `log_file`
(trainer.log)."""
