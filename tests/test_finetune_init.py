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
