"""Fine-tuning: ``module.init`` starts training from an evstereo checkpoint's weights."""

from __future__ import annotations

import pytest
import torch

from conftest import ROOT
from evstereo.models import load_checkpoint
from evstereo.training.modules import StereoTrainModule
from evstereo.training.runner import load_run_config, model_options

SHIPPED = ROOT / "evstereo" / "checkpoints" / "fast.pt"


def test_init_loads_the_checkpoints_weights_and_refuses_another_network():
    net, genotype = model_options(load_run_config(ROOT / "configs" / "train" / "shipped_fast.yaml", []))
    module = StereoTrainModule(net=net, genotype=genotype, init=str(SHIPPED))
    shipped = load_checkpoint(SHIPPED).state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in module.model.state_dict().items())
    assert module.hparams.init == str(SHIPPED)  # plain data in every Lightning checkpoint
    fresh = StereoTrainModule(net=net, genotype=genotype)
    assert not all(torch.equal(shipped[k], v) for k, v in fresh.model.state_dict().items())
    with pytest.raises(ValueError, match="differs from the model section"):
        StereoTrainModule(net=net, genotype="reference", init=str(SHIPPED))


def test_a_network_of_five_steps_per_window_starts_from_the_one_step_weights():
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "model" / "fast_t5.yaml").read_text())
    genotype = cfg.pop("genotype")
    module = StereoTrainModule(net=cfg, genotype=genotype, init=str(SHIPPED))
    assert module.model.time_steps == 5 and module.model.input_spec.bins == 25
    shipped = load_checkpoint(SHIPPED).state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in module.model.state_dict().items())
