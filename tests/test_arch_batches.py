"""The search's architecture step averaged over several batches (module.arch_batches): a less
noisy gradient per step, each batch forwarded as a one-batch step would forward it."""

from __future__ import annotations

import pytest
import torch

from evstereo.datasets.datamodule import StereoDataModule
from evstereo.errors import InputError
from evstereo.events.input_spec import sample_input
from evstereo.training.modules import StereoSearchModule
from evstereo.training.runner import build_datamodule

NET = {"feature_filters": 2, "matching_filters": 4, "max_disparity": 12, "modes": {}}
H, W = 24, 48


def _batch(frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    events = lambda: (torch.rand(frames, 1, 5, H, W, generator=g) < 0.2).float()  # noqa: E731
    disparity = 2.0 + 8.0 * torch.rand(frames, H, W, generator=g)
    return {"left": events(), "right": events(), "disparity": disparity, "valid": torch.ones(frames, H, W, dtype=torch.bool)}


def _module(arch_batches: int) -> StereoSearchModule:
    torch.manual_seed(0)
    module = StereoSearchModule(net=NET, feature_layers=2, matching_layers=3, energy_budget_mj=0.05,
                                arch_batches=arch_batches)
    return module.train()


def _arch_grads(module: StereoSearchModule, batch: dict) -> list[torch.Tensor]:
    module.zero_grad(set_to_none=True)
    module.arch_backward(batch, lambda loss: loss.backward())
    return [p.grad.clone() for p in module.model.arch_parameters()]


def _frames(batch: dict, start: int, stop: int) -> dict:
    return {k: v[start:stop] for k, v in batch.items()}


def test_one_step_follows_the_mean_gradient_of_its_batches_each_forwarded_alone():
    batch = _batch(4)
    averaged = _arch_grads(_module(2), batch)
    one = _module(1)
    halves = [_arch_grads(one, _frames(batch, 0, 2)), _arch_grads(one, _frames(batch, 2, 4))]
    for got, a, b in zip(averaged, *halves):
        assert got.abs().max() > 0
        torch.testing.assert_close(got, (a + b) / 2, rtol=1e-5, atol=1e-9)
    # not the same as one forward of all four frames (BatchNorm statistics over four)
    together = _arch_grads(one, batch)
    assert max((g - t).abs().max().item() for g, t in zip(averaged, together)) > 1e-6
    # and the logged figures are the frame-weighted means of the batches' figures (5 frames in
    # 3 batches: 2, 2 and 1 frames)
    five = _batch(5, seed=1)
    logged = _module(3).arch_backward(five, lambda loss: loss.backward())
    assert set(logged) >= {"search/arch_loss", "search/expected_mj", "search/budget_penalty"}
    alone = [one.arch_backward(_frames(five, a, b), lambda loss: loss.backward()) for a, b in ((0, 2), (2, 4), (4, 5))]
    for key, value in logged.items():
        assert value == pytest.approx((2 * alone[0][key] + 2 * alone[1][key] + alone[2][key]) / 5, rel=1e-5)
    assert len({round(a["search/arch_loss"], 6) for a in alone}) == 3  # the weights matter


def test_arch_batches_is_checked_and_set_from_the_module_section_only(tmp_path):
    with pytest.raises(ValueError, match="arch_batches must be at least 1"):
        StereoSearchModule(net=NET, feature_layers=2, matching_layers=3, arch_batches=0)
    with pytest.raises(TypeError, match="arch_batches"):
        StereoSearchModule(net=NET, feature_layers=2, matching_layers=3, arch_batches=2.5)
    module = _module(1)
    with pytest.raises(InputError, match="module.arch_batches"):
        build_datamodule({"data": {"arch_batches": 3}}, sample_input(module.model), search=True)


def test_the_arch_loader_serves_arch_batches_batches_at_once(tmp_path):
    dm = StereoDataModule(batch_size=2, search_split=True, arch_batches=3)
    dm.datasets["train"] = torch.utils.data.TensorDataset(torch.arange(40))
    loaders = dm.train_dataloader().iterables
    assert loaders["weights"].batch_size == 2 and loaders["arch"].batch_size == 6
    plain = StereoDataModule(batch_size=2, search_split=True)
    plain.datasets["train"] = torch.utils.data.TensorDataset(torch.arange(40))
    assert plain.train_dataloader().iterables["arch"].batch_size == 2
