"""Config validation: every problem listed by key path; the CLI rejects a bad config before any model loads."""

import time

import pytest

from tests.helpers import nlirg_cli
from trainer_core.config import ConfigError, RunConfig, build_config

CONTRACT_KEYS = ["model.path", "data.train", "data.format", "training.type", "training.max_steps", "training.seed",
                 "training.token_batch", "lora.enabled", "nlirg.enabled", "nlirg.weighting", "output.root",
                 "distributed.backend"]


def test_contract_keys_exist():
    d = RunConfig().to_dict()
    for key in CONTRACT_KEYS:
        section, name = key.split(".")
        assert name in d[section], key


def test_defaults_are_the_embedded_demo():
    cfg = build_config()
    assert cfg.model.path == "builtin:smollm2-135m" and cfg.data.train == ["builtin:demo"] and cfg.lora.enabled


def test_all_problems_reported_with_key_paths(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "training:\n  lrr: 1\n  batch_size: abc\n  seed: 1.5\nnlirg:\n  weighting: focal\n  loss_deadline: -1\n"
        "data:\n  train: missing.jsonl\nmodell: {}\nlora:\n  enabled: maybe\n"
    )
    with pytest.raises(ConfigError) as err:
        build_config(bad)
    text = "\n".join(err.value.problems)
    assert "training.lrr: unknown key (did you mean 'training.lr'?)" in text
    assert "training.batch_size: expected an integer" in text
    assert "training.seed: expected an integer" in text
    assert "nlirg.weighting: 'focal'" in text
    assert "loss_deadline" in text
    assert f"data.train: file '{tmp_path / 'missing.jsonl'}' not found" in text  # read from the config's folder
    assert "modell: unknown section (did you mean 'model'?)" in text
    assert "lora.enabled: expected true or false" in text
    assert len(err.value.problems) >= 8


def test_numbers_written_without_a_dot_are_read_as_floats(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("training:\n  lr: 1e-4\n")
    assert build_config(f).training.lr == pytest.approx(1e-4)


def test_yaml_syntax_error_names_the_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("training:\n  lr: [1,\n")
    with pytest.raises(ConfigError) as err:
        build_config(f)
    assert "line" in str(err.value) and "YAML" in str(err.value)


def test_overrides_are_validated_too():
    with pytest.raises(ConfigError) as err:
        build_config(None, ["training.max_steps=-3", "training.type=rlhf"])
    assert any(p.startswith("training.max_steps") for p in err.value.problems)
    assert any(p.startswith("training.type") for p in err.value.problems)


def test_cli_rejects_bad_config_with_exit_2_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  lrr: 1\nmodel:\n  path: ./no-such-model\n")
    started = time.monotonic()
    res = nlirg_cli("train", str(bad), cwd=tmp_path, timeout=60)
    assert res.returncode == 2
    assert "training.lrr" in res.stderr and "model.path" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "runs").exists()  # rejected before a run (or a model) was created
    assert time.monotonic() - started < 60


def test_build_config_applies_overrides_over_the_file_and_names_the_source(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("training:\n  lr: 1e-4\n  batch_size: 8\n")
    cfg = build_config(f, ["training.lr=3e-4", "data.format=qa"])
    assert cfg.training.lr == pytest.approx(3e-4) and cfg.training.batch_size == 8 and cfg.data.format == "qa"
    with pytest.raises(ConfigError, match=r"^.*my\.yaml: 1 problem"):
        build_config(f, ["training.batch_size=0"])
    with pytest.raises(ConfigError, match="^default config: 1 problem"):
        build_config(None, ["training.batch_size=0"])
    with pytest.raises(ConfigError, match="^demo config: 1 problem"):
        build_config(None, ["training.batch_size=0"], source="demo config")


@pytest.mark.parametrize("key, allowed", [
    ("model.dtype", "auto, fp32, bf16, fp16"), ("data.format", "auto, alpaca, messages, prompt_response, qa, text"),
    ("training.type", "sft, cpt"), ("training.scheduler", "cosine, linear, constant"),
    ("nlirg.weighting", "nlirg, plain, dft"), ("distributed.backend", "none, deepspeed"),
    ("distributed.optimizer", "torch, deepspeed"),
])
def test_every_choice_field_refuses_other_values_in_one_message_shape(key, allowed):
    expected = f"{key}: 'bogus' is not one of {allowed}"
    with pytest.raises(ConfigError) as parsed:  # from YAML / --set: the parser's _coerce
        build_config(None, [f"{key}=bogus"])
    assert parsed.value.problems == [expected]
    section, name = key.split(".")
    cfg = RunConfig()
    setattr(getattr(cfg, section), name, "bogus")  # built in code: the section's own check()
    assert cfg.check() == [expected]
