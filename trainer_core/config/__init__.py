"""The run config (a package): `schema` holds the documented dataclasses, `parse` turns YAML and `--set`
overrides into a validated `RunConfig`, `deepspeed` fills and checks the DeepSpeed JSON of a run.

Torch-free: the TUI and the CLI validate configs without importing torch (import-linter checks it).
"""

from trainer_core.config.parse import (
    build_config,
    config_from_dict,
    config_to_yaml,
    parse_override,
    save_config,
)
from trainer_core.config.schema import (
    BUILTIN_DATA,
    BUILTIN_MODELS,
    DATA_FORMATS,
    ConfigError,
    DataConfig,
    DistributedConfig,
    EvalConfig,
    LoraConfig,
    ModelConfig,
    NlirgParams,
    OutputConfig,
    RunConfig,
    TelemetryConfig,
    TrainingConfig,
    non_finite,
)

__all__ = [
    "BUILTIN_DATA", "BUILTIN_MODELS", "DATA_FORMATS", "ConfigError", "DataConfig", "DistributedConfig", "EvalConfig",
    "LoraConfig", "ModelConfig", "NlirgParams", "OutputConfig", "RunConfig", "TelemetryConfig", "TrainingConfig",
    "config_from_dict", "config_to_yaml", "build_config", "parse_override", "save_config", "non_finite",
]
