"""What fits before anything loads: peak memory per GPU from a model's config.json and a run config
(docs/plan.md). Torch-free: the CLI (`nlirg plan`, `nlirg check`) and the TUI's Config pane import it."""

from trainer_core.plan.api import PlanResult, Suggestion, plan_config
from trainer_core.plan.gpus import gpu_memory_bytes, parse_memory
from trainer_core.plan.shape import ShapeError

__all__ = ["PlanResult", "ShapeError", "Suggestion", "gpu_memory_bytes", "parse_memory", "plan_config"]
