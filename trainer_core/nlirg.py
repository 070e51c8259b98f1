"""The public NLIRG API at its documented path (DESIGN §5: `trainer_core.nlirg.nlirg_weights`, `zone_of`).

The implementation lives in `trainer_core.train.nlirg`; this module only re-exports it, so the contract path
stays stable while the package is organised by halves.
"""

from trainer_core.train.nlirg import EPS, ZONE_NAMES, nlirg_weights, weighted_loss_sum, zone_of

__all__ = ["EPS", "ZONE_NAMES", "nlirg_weights", "weighted_loss_sum", "zone_of"]
