"""The loss: `step` (`loss_step`: forward, the LM head and cross-entropy on target positions only, NLIRG
weighting), `head_ce` (the fused, chunked head + cross-entropy) and `weights` (`nlirg_weights`, `zone_of`:
docs/design.md §5)."""
