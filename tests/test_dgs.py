"""DGS: the phase moves b toward the better candidate; the Lightning callback runs it, logs and saves it.

The constructed problem: one spiking linear layer whose membranes all sit below threshold,
trained to fire. One SGD step moves a candidate's weights in proportion to its surrogate
value at the membrane, so the best temperature is known in advance: far from threshold
(u - V_th = -0.4) a flatter surrogate (smaller b) gives the larger gradient, close to it
(u - V_th = -0.05) a sharper one (larger b) does.
"""

from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from evstereo.snn import DGSConfig, SpikingConv, SpikingLinear, dgs_layers, run_dgs_phase, surrogate_temperatures
from evstereo.snn.surrogate import surrogate_grad
from evstereo.training.dgs import DGSCallback

FAR, NEAR = 0.1, 0.45  # membrane potentials (threshold 0.5)


def make_layer(u0: float, b: float = 3.0) -> SpikingLinear:
    layer = SpikingLinear(8, 4, bias=False, b=b)
    with torch.no_grad():
        layer.synapse.weight.fill_(u0 / 8)  # all-ones input -> u = u0 everywhere
    return layer


def fire_loss(layer):
    return lambda batch: ((layer(batch) - 1.0) ** 2).mean()


def phase(u0: float, b: float = 3.0, batches: int = 150, **cfg):
    layer = make_layer(u0, b)
    record = run_dgs_phase(layer, [torch.ones(4, 1, 8)] * batches, fire_loss(layer),
                           DGSConfig(sgd_lr=1e-4, max_batches=batches, **cfg))
    return layer, record


def test_constructed_problem_has_the_expected_better_candidate():
    b = torch.tensor([2.6, 3.0, 3.4])
    far = surrogate_grad(torch.full((3,), FAR - 0.5), b)
    near = surrogate_grad(torch.full((3,), NEAR - 0.5), b)
    assert far[0] > far[1] > far[2] and near[2] > near[1] > near[0]


@pytest.mark.parametrize("u0,expected_delta", [(FAR, -0.4), (NEAR, 0.4)])
def test_dgs_moves_b_toward_the_better_candidate(u0, expected_delta):
    layer, record = phase(u0)
    info = record["layers"][""]
    assert record["batches"] == 150
    assert info["delta"] == expected_delta and info["z"] > 5  # far beyond batch noise
    assert float(layer.neuron.b) == pytest.approx(3.0 + expected_delta)
    w = info["weights"]
    assert sum(w) == pytest.approx(1.0) and max(w) == w[[-0.4, -0.2, 0.0, 0.2, 0.4].index(expected_delta)]


def test_layers_of_one_phase_choose_their_own_candidates():
    """Two layers in one model and one phase: the far-from-threshold one moves down, the near one
    up (candidates are trained with all layers on candidate k together, but each layer's choice
    is its own mixing weights')."""

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.far, self.near = make_layer(FAR), make_layer(NEAR)

        def forward(self, x):
            return self.far(x), self.near(x)

    model = Two()

    def loss(batch):
        a, b = model(batch)
        return ((a - 1.0) ** 2).mean() + ((b - 1.0) ** 2).mean()

    record = run_dgs_phase(model, [torch.ones(4, 1, 8)] * 150, loss, DGSConfig(sgd_lr=1e-4, max_batches=150))
    assert {k: v["delta"] for k, v in record["layers"].items()} == {"far": -0.4, "near": 0.4}
    assert float(model.far.neuron.b) == pytest.approx(2.6) and float(model.near.neuron.b) == pytest.approx(3.4)


def test_batch_noise_alone_does_not_move_b():
    """A loss that pulls the layer's output up or down at random from batch to batch has no
    better temperature: the accumulated mixing weights still pick some candidate (the former
    rule, min_z=0, moved b on 15 of 30 seeds), but its advantage over the 0-delta candidate is
    within 3 standard errors of its batch-to-batch spread (z 0-2.9 on those 30 seeds), so b stays;
    the constructed problems above have z of 25 (far) and 9.5 (near)."""
    moved_before = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        signs = [float(torch.randint(0, 2, (1,), generator=g)) * 2 - 1 for _ in range(100)]
        for min_z in (0.0, 3.0):
            layer = make_layer(0.3)
            batches = [(torch.ones(4, 1, 8), sign) for sign in signs]
            record = run_dgs_phase(layer, batches, lambda b: layer(b[0]).mean() * b[1],
                                   DGSConfig(sgd_lr=1e-3, max_batches=100, min_z=min_z))
            info = record["layers"][""]
            if min_z == 0.0:
                moved_before += info["delta"] != 0.0
            else:
                assert info["delta"] == 0.0 and float(layer.neuron.b) == 3.0, info
                assert info["z"] is not None and info["z"] < 3.0
    assert moved_before >= 2  # the noise is real: without the test b wanders


def test_three_candidate_variant_and_clamping():
    layer, record = phase(NEAR, batches=60, deltas=DGSConfig.three_candidates().deltas)
    assert record["layers"][""]["delta"] == 0.2 and float(layer.neuron.b) == pytest.approx(3.2)
    layer, record = phase(FAR, b=1.1, batches=60)  # wants to go down, floor is 1
    assert float(layer.neuron.b) == pytest.approx(1.0)
    layer, record = phase(NEAR, b=5.9, batches=60, b_max=6.0)
    assert float(layer.neuron.b) == pytest.approx(6.0)


def test_phase_changes_nothing_but_b():
    torch.manual_seed(0)
    net = torch.nn.Sequential(SpikingConv(2, 4), SpikingConv(4, 4, mode="analog"), SpikingConv(4, 2))
    x = torch.rand(2, 3, 2, 6, 6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    names = [n for n, _ in dgs_layers(net)]
    assert names == ["0", "2"]  # the analog layer is not searched
    record = run_dgs_phase(net, [x] * 3, lambda batch: net(batch).mean(), DGSConfig(max_batches=2))
    assert record["batches"] == 2 and set(record["layers"]) == {"0", "2"}
    after = net.state_dict()
    for k, v in before.items():
        if k.endswith("neuron.b"):
            continue
        assert torch.equal(after[k], v), k  # weights and BN running statistics untouched
    assert all(not hasattr(m, "_dgs") or m._dgs is None for m in net.modules())
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in net.parameters() if p.grad is None)
    assert set(surrogate_temperatures(net)) == {"0", "1", "2"}


def test_layer_selection_by_pattern_and_adopting_the_winner():
    net = torch.nn.Sequential(SpikingConv(2, 4), SpikingConv(4, 4), SpikingConv(4, 2))
    assert [n for n, _ in dgs_layers(net, DGSConfig(layers=["1", "2"]))] == ["1", "2"]
    assert [n for n, _ in dgs_layers(net, DGSConfig(exclude=["0"]))] == ["1", "2"]
    layer, record = phase(NEAR, batches=20, adopt_weights=True)
    assert not torch.allclose(layer.synapse.weight, torch.full_like(layer.synapse.weight, NEAR / 8))


def test_config_validation_and_schedule():
    cfg = DGSConfig()
    assert cfg.deltas == (-0.4, -0.2, 0.0, 0.2, 0.4) and cfg.every_n_epochs == 5 and cfg.max_batches == 200
    assert cfg.alpha_lr == 0.01 and (cfg.b_min, cfg.b_max) == (1.0, 6.0)
    assert [e for e in range(12) if cfg.is_phase_epoch(e)] == [0, 5, 10]
    assert [e for e in range(8) if DGSConfig(every_n_epochs=3, start_epoch=1).is_phase_epoch(e)] == [1, 4, 7]
    with pytest.raises(ValueError):
        DGSConfig(deltas=())
    with pytest.raises(ValueError):
        DGSConfig(b_min=6, b_max=1)


# ------------------------------------------------------------------------------ Lightning


class ToyModule(pl.LightningModule):
    """A spiking layer to search, an analog one to leave alone; logs from training_step."""

    def __init__(self, own_loss: bool = True) -> None:
        super().__init__()
        self.spiking = make_layer(NEAR)
        self.analog = SpikingLinear(4, 4, mode="analog")
        self.own_loss = own_loss

    def forward(self, x):
        return self.analog(self.spiking(x))

    def _loss(self, batch):
        (x,) = batch
        return ((self.spiking(x) - 1.0) ** 2).mean() + 0.0 * self(x).sum()

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-6)


class ToyWithDGSLoss(ToyModule):
    def dgs_loss(self, batch):
        return self._loss(batch)


def trainer(tmp_path, epochs, callback, **kw):
    return pl.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", devices=1,
                      limit_train_batches=2, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, default_root_dir=tmp_path, log_every_n_steps=1, **kw)


def loader():
    return DataLoader(TensorDataset(torch.ones(240, 1, 8)), batch_size=4)


@pytest.mark.parametrize("module_cls", [ToyWithDGSLoss, ToyModule])
def test_callback_runs_phases_logs_and_checkpoints(tmp_path, module_cls):
    model = module_cls()
    cb = DGSCallback(every_n_epochs=1, max_batches=60, sgd_lr=1e-4)
    t = trainer(tmp_path, 2, cb, logger=CSVLogger(tmp_path, name="log"))
    t.fit(model, loader())
    assert [r["epoch"] for r in cb.history] == [0, 1]
    assert all(set(r["layers"]) == {"spiking"} and r["batches"] == 60 for r in cb.history)
    bs = [b for _, b in cb.b_history()["spiking"]]
    assert bs[0] > 3.0 and bs[1] > bs[0]  # toward the sharper candidates, phase after phase
    assert float(model.spiking.neuron.b) == pytest.approx(bs[-1])
    with open(next((tmp_path / "log").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["dgs_b/spiking"]) for r in rows if r.get("dgs_b/spiking")]
    assert logged == pytest.approx(bs)
    # history and b are in the checkpoint; resuming does not repeat finished phases
    path = tmp_path / "dgs.ckpt"
    t.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # the callback's state is plain data
    assert [r["epoch"] for r in ckpt["callbacks"][cb.state_key]["history"]] == [0, 1]
    assert float(ckpt["state_dict"]["spiking.neuron.b"]) == pytest.approx(bs[-1])
    cb2 = DGSCallback(every_n_epochs=1, max_batches=10, sgd_lr=1e-4)
    resumed = module_cls()
    trainer(tmp_path, 3, cb2, logger=False).fit(resumed, loader(), ckpt_path=path, weights_only=True)
    assert [r["epoch"] for r in cb2.history] == [0, 1, 2]
    assert cb2.history[:2] == cb.history
    assert cb2.history[2]["layers"]["spiking"]["b_before"] == pytest.approx(bs[-1])


def test_callback_skips_off_epochs_and_manual_optimisation_needs_dgs_loss(tmp_path):
    model = ToyWithDGSLoss()
    cb = DGSCallback(DGSConfig.three_candidates(), every_n_epochs=2, max_batches=2)
    trainer(tmp_path, 3, cb, logger=False).fit(model, loader())
    assert [r["epoch"] for r in cb.history] == [0, 2]
    assert cb.config.deltas == (-0.2, 0.0, 0.2)

    class Manual(ToyModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

    with pytest.raises(RuntimeError, match="dgs_loss"):
        trainer(tmp_path, 1, DGSCallback(max_batches=1), logger=False).fit(Manual(), loader())
