"""algo is validated by the config model of algo.name: fields of another algorithm are refused,
not ignored; plugins bring their own model."""

from __future__ import annotations

import pytest
from pydantic import Field

from saferl.config import (
    AlgoConfig,
    Config,
    ConfigError,
    CPOConfig,
    PPOLagrangianConfig,
    algo_config_model,
    config_to_dict,
    load_config,
    register_algo_config,
)


def test_each_algorithm_gets_its_own_model():
    assert type(load_config().algo) is CPOConfig
    ppo = load_config("configs/wheelchair_ppo_lagrangian.yaml").algo
    assert type(ppo) is PPOLagrangianConfig and ppo.kl_early_stop == 0.015
    assert type(Config().algo) is CPOConfig


def test_a_cpo_field_given_to_ppo_lagrangian_is_refused_in_one_line_naming_it():
    with pytest.raises(ConfigError) as info:
        load_config(base=Config(), overrides=["algo.name=ppo_lagrangian", "algo.cg_iters=3"])
    msg = str(info.value)
    assert msg.startswith("algo.cg_iters: unknown key for algorithm 'ppo_lagrangian'")
    assert "kl_early_stop" in msg and "\n" not in msg


def test_switching_the_default_config_to_another_algorithm_names_every_foreign_field():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["algo.name=ppo_lagrangian"])
    msg = str(info.value)
    assert msg.startswith("algo.target_kl, algo.cost_target_gain: unknown keys for algorithm")


def test_switching_from_field_defaults_starts_the_new_algorithm_from_its_defaults():
    cfg = load_config(base=Config(), overrides=["algo.name=ppo_lagrangian"])
    assert type(cfg.algo) is PPOLagrangianConfig


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algo.name=bogus", "algo.name: unknown algorithm 'bogus'; available: "),
        ("algo.name=3", "algo.name: must be a string, got 3"),
        ("algo.kl_early_stop=0.01", "algo.kl_early_stop: unknown key for algorithm 'cpo'"),
    ],
)
def test_bad_algorithm_names_and_fields(override, expected):
    with pytest.raises(ConfigError, match="^" + expected.replace(".", r"\.")):
        load_config(base=Config(), overrides=[override])


def test_a_plugin_registers_its_config_model_and_the_section_round_trips(tmp_path):
    from typing import Literal

    class MyConfig(AlgoConfig):
        name: Literal["mine"] = "mine"
        step: float = Field(0.1, gt=0)

    register_algo_config("mine", MyConfig)
    cfg = load_config(base=Config(), overrides=["algo.name=mine", "algo.step=0.5"])
    assert type(cfg.algo) is MyConfig and cfg.algo.step == 0.5
    assert config_to_dict(cfg)["algo"]["step"] == 0.5
    with pytest.raises(ConfigError, match=r"^algo\.step: must be > 0"):
        load_config(base=Config(), overrides=["algo.name=mine", "algo.step=-1"])
    with pytest.raises(TypeError):
        register_algo_config("bad", dict)  # type: ignore[arg-type]


def test_a_plugin_factory_with_a_config_model_attribute_is_found_through_the_registry():
    from typing import Literal

    from saferl.registry import ALGORITHMS

    class OtherConfig(AlgoConfig):
        name: Literal["other"] = "other"
        width: int = 3

    class Other:
        config_model = OtherConfig

    ALGORITHMS.register("other", Other, overwrite=True, source="user")
    assert algo_config_model("other") is OtherConfig


def test_distributed_settings_are_accepted_and_nccl_needs_cuda():
    cfg = load_config(overrides=["distributed.zero=true", "distributed.timeout_s=30"])
    assert cfg.distributed.zero and cfg.distributed.timeout_s == 30
    with pytest.raises(ConfigError, match=r"^distributed: backend nccl needs train.device: cuda"):
        load_config(overrides=["distributed.backend=nccl"])


def test_an_algorithm_switch_on_a_base_keeps_shared_fields_and_drops_the_others():
    base = load_config()  # CPO with target_kl and cost_target_gain set, 128x128 networks
    cfg = load_config(overrides=["algo.name=ppo_lagrangian"], base=base)
    assert type(cfg.algo) is PPOLagrangianConfig
    assert cfg.algo.hidden_sizes == [128, 128] and cfg.algo.cost_gamma == base.algo.cost_gamma
    with pytest.raises(ConfigError, match=r"^algo\.target_kl: unknown key for algorithm"):
        load_config(overrides=["algo.name=ppo_lagrangian", "algo.target_kl=0.1"], base=base)
