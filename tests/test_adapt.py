"""Self-supervised adaptation (apps.adapt): the loss terms, the unlabelled windows, the app end to end.

The recordings here are random-dot stereo scenes written in the MVSEC layout with an identity
calibration: dots slide over a slanted plane whose disparity is known row by row
(``DISPARITY``), so the right camera's events are the left ones shifted by it. They take a
second to write, unlike the simulator's, and their ground truth (when written) is exact.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from apps import adapt as adapt_app
from apps import cli
from evstereo.datasets.prepared import valid_frames
from evstereo.datasets.samples import SampleSpec, make_sample, represent, window_bounds
from evstereo.datasets.scaling import resolve_scale
from evstereo.datasets.unlabelled import UnlabelledDataset, event_images, window_times
from evstereo.events.input_spec import InputSpec
from evstereo.geometry import StereoCalibration
from evstereo.metrics import frame_metrics
from evstereo.models import build_stereo_net, load_checkpoint, save_checkpoint
from evstereo.recordings import open_recording
from evstereo.recordings.mvsec import MVSECRecording
from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file
from evstereo.recordings.recording import Recording
from evstereo.training.checkpoints import read_resume_checkpoint
from evstereo.training.runner import INTERRUPTED
from evstereo.training.selfsup import (AdaptModule, lr_consistency_loss, photometric_loss,
                                       right_disparity, selfsup_loss, smoothness_loss, warp)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "model" / "tiny.yaml"
T0 = 1.5e9
FB = 10.0
HEIGHT, WIDTH = 64, 96


def disparity_of_row(y):
    """The scene: a slanted plane, 5 px at the top row to 11 px at the bottom."""
    return 5.0 + 6.0 * np.asarray(y, np.float64) / HEIGHT


def _dot_events(pos: np.ndarray, t: np.ndarray, height: int, width: int):
    """Events of dots at ``pos`` [steps, dots, (x, y)] over times ``t``: + where a dot enters a
    pixel, - where it leaves one (an edge's events), in time order, inside the sensor."""
    r = np.round(pos).astype(np.int64)
    s, n = np.nonzero(np.any(r[1:] != r[:-1], axis=-1))
    xy = np.concatenate([r[1:][s, n], r[:-1][s, n]])
    tt, p = np.concatenate([t[1:][s], t[1:][s]]), np.repeat([1.0, -1.0], len(s))
    keep = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    order = np.argsort(tt[keep], kind="stable")
    return xy[keep][order, 0], xy[keep][order, 1], tt[keep][order], p[keep][order]


def write_dots(folder: Path, name: str, seconds: float = 0.5, dots: int = 500, seed: int = 0, gt: bool = True,
               cameras: tuple[str, ...] = ("left", "right"), offset: tuple[float, float] = (0.0, 0.0)) -> Path:
    """A random-dot stereo recording (see the module doc); ``cameras``: which get events;
    ``offset`` (s): the time the (left, right) camera's events start at."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 5e-4)
    span = np.array([WIDTH + 40.0, HEIGHT + 20.0])  # a torus a bit larger than the view: the texture wraps
    p0 = rng.uniform(0, 1, (dots, 2)) * span
    v = np.array([80.0, 30.0]) * rng.uniform(0.7, 1.3, (dots, 1))
    wobble = np.stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 2 * t)], -1)[:, None, :] * 4
    left = (p0[None] + v[None] * t[:, None, None] + wobble) % span - np.array([20.0, 10.0])
    right = left.copy()
    right[..., 0] -= disparity_of_row(left[..., 1])
    data = folder / f"{name}_data.hdf5"
    with MVSECWriter(data, folder / f"{name}_gt.hdf5" if gt else None, HEIGHT, WIDTH, compress=False) as w:
        for cam, pos, start in (("left", left, offset[0]), ("right", right, offset[1])):
            w.ensure_events(cam)
            if cam in cameras:
                x, y, tt, p = _dot_events(pos, t, HEIGHT, WIDTH)
                w.add_events(cam, x, y, T0 + start + tt, p)
        if gt:
            ts = T0 + np.arange(1, int(seconds * 20) + 1) / 20
            rows = np.repeat(np.arange(HEIGHT)[:, None], WIDTH, 1)
            depth = (FB / disparity_of_row(rows)).astype(np.float32)
            w.add_depth("left", "rect", np.repeat(depth[None], len(ts), 0), ts)
    calib = folder / f"{name}_calib"
    calib.mkdir(exist_ok=True)
    StereoCalibration.identity(HEIGHT, WIDTH, fB=FB, focal=100.0).to_camchain_yaml(calibration_file(calib, name))
    return data


@pytest.fixture(scope="module")
def dots(tmp_path_factory) -> Path:
    """0.5 s of dots, no ground truth (the file an adaptation gets)."""
    return write_dots(tmp_path_factory.mktemp("dots"), "dots", gt=False)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(build_stereo_net(TINY), path)
    return path


def gt_error(model: torch.nn.Module, path: Path) -> float:
    """Mean disparity error (px, MVSEC protocol) of ``model`` at input scale 1 over the GT frames."""
    spec = SampleSpec.for_input(model.input_spec)
    errors = []
    with open_recording(path) as rec, torch.no_grad():
        for i in valid_frames(rec, spec):
            s = make_sample(rec, int(i), spec)
            pred = model.eval()(torch.from_numpy(s["left"])[None], torch.from_numpy(s["right"])[None])[0].numpy()
            errors.append(frame_metrics(pred, s["disparity"], s["valid"])["mean_disparity_error"])
    return float(np.mean(errors))


# ------------------------------------------------------------------------------ the loss
def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """[1, 3, h, w] in 0..1, smooth enough to interpolate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1)


def _pair(d: int, h: int = 32, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right) with left(x) = right(x - d): what a constant disparity d gives."""
    big = _smooth_image(h, w + d)
    return big[..., :w], big[..., d:]


def test_warping_by_the_true_disparity_reproduces_the_left_image():
    left, right = _pair(8)
    warped, inside = warp(right, torch.full((1, 32, 64), 8.0))
    torch.testing.assert_close(warped[..., 8:], left[..., 8:])
    assert inside[0, :, 8:].all() and not inside[0, :, :8].any()  # x - d < 0 lies outside the right image


@pytest.mark.parametrize("scales", [1, 3])
def test_photometric_loss_is_zero_at_the_true_disparity_and_grows_away_from_it(scales):
    left, right = _pair(8)

    def loss(d: float, ssim: float) -> float:
        return float(photometric_loss(left, right, torch.full((1, 32, 64), d), ssim=ssim, threshold=0.0,
                                      scales=scales)[0])

    assert loss(8, ssim=0.0) < 1e-6  # L1 alone: exactly zero
    for ssim in (0.0, 0.85):
        values = {d: loss(d, ssim) for d in (2, 5, 7, 7.5, 8, 8.5, 9, 11, 14)}
        assert min(values, key=values.get) == 8, values
        assert values[7] > values[7.5] > values[8] < values[8.5] < values[9], values


def test_photometric_mask_ignores_pixels_without_events_in_either_view():
    left, right = _pair(8)
    blank = torch.zeros_like(left)
    loss, mask = photometric_loss(blank, torch.zeros_like(right), torch.full((1, 32, 64), 3.0))
    assert float(loss) == 0.0 and not mask.any()
    _, mask = photometric_loss(left * (left > 0.5), right * (right > 0.5), torch.full((1, 32, 64), 8.0))
    assert 0 < float(mask.float().mean()) < 1


def test_smoothness_is_zero_for_a_constant_disparity_and_edge_aware():
    image = _smooth_image(32, 64)
    assert float(smoothness_loss(torch.full((1, 32, 64), 7.0), image)) == 0.0
    step = torch.full((1, 32, 64), 5.0)
    step[..., 32:] = 9.0
    flat, edge = torch.zeros(1, 3, 32, 64), torch.zeros(1, 3, 32, 64)
    edge[..., 32:] = 1.0  # an image edge exactly where the disparity steps
    assert float(smoothness_loss(step, edge)) < 0.01 * float(smoothness_loss(step, flat))
    ramp = torch.linspace(4, 12, 64).expand(1, 32, 64)
    assert float(smoothness_loss(ramp, flat)) > 0


def test_left_right_consistency():
    d = torch.full((1, 32, 64), 6.0)
    assert float(lr_consistency_loss(d, d)) == 0.0
    assert float(lr_consistency_loss(d, d + 2.0)) == pytest.approx(2.0)
    mask = torch.zeros(1, 32, 64, dtype=torch.bool)
    assert float(lr_consistency_loss(d, d + 2.0, mask)) == 0.0  # nothing to compare


def test_right_disparity_mirrors_and_swaps_the_views():
    # a "network" that returns its left input's first channel: the right view's disparity is
    # then the right input's own first channel, mirrored twice back into place
    def first_channel(left, right):
        return left[:, 0, 0]

    left, right = torch.rand(2, 1, 5, 8, 12), torch.rand(2, 1, 5, 8, 12)
    torch.testing.assert_close(right_disparity(first_channel, left, right), right[:, 0, 0])


def test_total_loss_is_smallest_at_the_true_disparities():
    left, right = _pair(8)
    truth = torch.full((1, 32, 64), 8.0)
    at_truth = selfsup_loss(left, right, truth, truth)
    assert float(at_truth["lr_consistency"]) == 0.0 and float(at_truth["smoothness"]) == 0.0
    for wrong in (6.0, 10.0):
        d = torch.full((1, 32, 64), wrong)
        assert float(selfsup_loss(left, right, d, d)["loss"]) > float(at_truth["loss"]) + 0.01
    assert set(at_truth) == {"photometric", "smoothness", "lr_consistency", "loss"}
    assert set(selfsup_loss(left, right, truth)) == {"photometric", "smoothness", "loss"}  # left view only


def test_the_loss_on_event_images_pulls_a_biased_disparity_to_the_truth(dots):
    """Gradient descent on the self-supervised loss alone (no ground truth) moves a plane of
    disparity that starts 3 px off to the scene's true plane, on the blurred event images."""
    ds = UnlabelledDataset([dots], InputSpec(), scale=1.0)
    batch = default_collate([ds[i] for i in range(0, len(ds), 2)])
    n = len(batch["left"])
    rows = torch.arange(HEIGHT, dtype=torch.float32).view(1, HEIGHT, 1).expand(1, HEIGHT, WIDTH)
    truth = torch.from_numpy(disparity_of_row(rows.numpy())).float()
    offset, slope = torch.tensor(truth.mean().item() + 3.0, requires_grad=True), torch.tensor(0.0, requires_grad=True)

    def plane():  # the same plane in both views (the disparity varies along rows only)
        return (offset + slope * (rows - HEIGHT / 2) / 10).expand(n, HEIGHT, WIDTH)

    start = float((plane().detach() - truth).abs().mean())
    opt = torch.optim.Adam([offset, slope], lr=0.2)
    for _ in range(50):
        d = plane()
        loss = selfsup_loss(batch["left_image"], batch["right_image"], d, d)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = float((plane().detach() - truth).abs().mean())
    assert start > 2.5 and end < 0.4, (start, end)


@pytest.mark.parametrize("update", [False, True])
def test_batchnorm_statistics_stay_as_trained_unless_asked(update):
    module = AdaptModule.from_network(build_stereo_net(TINY), update_bn_stats=update).train()
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.training == update for m in norms) and module.model.training
    before = [m.running_mean.clone() for m in norms]
    g = torch.Generator().manual_seed(0)
    batch = {"left": (torch.rand(2, 1, 5, 24, 36, generator=g) < 0.1).float(),
             "right": (torch.rand(2, 1, 5, 24, 36, generator=g) < 0.1).float(),
             "left_image": torch.rand(2, 3, 24, 36, generator=g), "right_image": torch.rand(2, 3, 24, 36, generator=g)}
    module.losses(batch)["loss"].backward()
    changed = any(not torch.equal(a, m.running_mean) for a, m in zip(before, norms))
    assert changed == update
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


# ------------------------------------------------------------------------------ the windows
def test_windows_are_regular_and_where_both_cameras_have_events(tmp_path):
    # the right camera starts 0.2 s late: no window before both record
    path = write_dots(tmp_path, "late", seconds=0.5, gt=False, offset=(0.0, 0.2))
    spec = InputSpec()
    with open_recording(path) as rec:
        times = window_times(rec, spec)
        right_start = rec.time_range("right")[0]
        assert len(times) == 5 and times[0] >= right_start + spec.window_us  # 0.2..0.5 s: both record
        assert set(np.diff(times)) == {spec.window_us}
        assert set(np.diff(window_times(rec, spec, stride_us=20_000))) == {20_000}
        for t in times:
            assert all(len(rec.events(c, *window_bounds(t, spec))) >= 200 for c in ("left", "right"))
        assert len(window_times(rec, spec, min_events=10**6)) == 0


def test_items_are_the_networks_input_and_blurred_event_images(dots, monkeypatch):
    # ground truth is never read (the recording has none; this would fail loudly if it were)
    for cls, name in ((Recording, "disparity"), (MVSECRecording, "depth"), (MVSECRecording, "depth_right")):
        monkeypatch.setattr(cls, name, lambda *a, **k: pytest.fail("ground truth was read"))
    spec = InputSpec()
    ds = UnlabelledDataset([dots], spec, scale=1.0)
    item = ds[3]
    t0, t1 = window_bounds(int(item["t_us"]), spec)
    with open_recording(dots) as rec:
        for cam in ("left", "right"):
            events = rec.events(cam, t0, t1)
            np.testing.assert_array_equal(item[cam].numpy(), represent(events, spec, HEIGHT, WIDTH, t0, t1))
            np.testing.assert_array_equal(item[f"{cam}_image"].numpy(), event_images(events, HEIGHT, WIDTH, t0, t1))
    image = item["left_image"]
    assert image.shape == (3, HEIGHT, WIDTH) and float(image.min()) >= 0 and float(image.max()) == 1.0
    assert float((image.amax(0) > 0.05).float().mean()) > 2 * float((item["left"].abs().sum((0, 1)) > 0).float().mean())

    cropped = UnlabelledDataset([dots], spec, crop=(32, 48), scale=1.0)[3]
    assert cropped["left"].shape == (1, 5, 32, 48) and cropped["right_image"].shape == (3, 32, 48)
    scaled = UnlabelledDataset([dots], spec, scale=2.0)
    assert scaled.sizes == [(128, 192)] and scaled[3]["left"].shape == (1, 5, 128, 192)
    assert scaled[3]["left_image"].shape == (3, 128, 192)
    auto = UnlabelledDataset([dots], spec).scales  # the rule inference uses (here from the rig's f*B)
    assert auto == [resolve_scale("auto", HEIGHT, WIDTH, None, FB)] and auto != [1.0]


# ------------------------------------------------------------------------------ the app
def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = adapt_app.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_adapt_is_a_subcommand():
    assert cli.SUBCOMMANDS["adapt"][0] == "apps.adapt"


def test_adapt_writes_a_loadable_model_and_resumes_after_ctrl_c(tmp_path, dots, tiny_ckpt, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["--checkpoint", str(tiny_ckpt), "--data", str(dots),
            "checkpoint.every_n_train_steps=1", "--out", str(out), "--epochs", "2", "--steps-per-epoch", "3",
            "--scale", "1", "--crop", "48", "72", "--lr", "1e-3", "-q"]
    step = AdaptModule.training_step

    def interrupted_at_step_4(self, batch, batch_idx):
        if self.global_step == 4:
            raise KeyboardInterrupt
        return step(self, batch, batch_idx)

    monkeypatch.setattr(AdaptModule, "training_step", interrupted_at_step_4)
    code, _, err = _run(capsys, *argv)
    assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err[-2000:]
    assert "Traceback" not in err and not (out / "model.pt").exists()
    last = out / "checkpoints" / "last.ckpt"
    assert read_resume_checkpoint(last)["global_step"] == 4  # plain data: read with weights_only=True
    monkeypatch.setattr(AdaptModule, "training_step", step)

    code, stdout, err = _run(capsys, *argv[:-1])  # the same command again (with its output)
    assert code == 0, err[-2000:]
    assert f"resuming from {last}" in stdout and "adapted for 2 epochs, 6 steps" in stdout
    rows = [r for r in _csv(out / "csv" / "metrics.csv") if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == list(range(6))  # the whole run, across the interruption
    assert all(r.get("adapt/photometric") for r in rows)
    assert (out / "plots" / "curves.png").is_file() and (out / "checkpoints" / "epoch001.ckpt").is_file()

    adapted, start = load_checkpoint(out / "model.pt"), load_checkpoint(tiny_ckpt)
    assert adapted.config == start.config and adapted.genotype == start.genotype
    changed = {k for k, v in start.state_dict().items() if not torch.equal(v, adapted.state_dict()[k])}
    assert changed and not any("running_" in k for k in changed)  # weights adapted, BatchNorm statistics kept
    x = torch.rand(1, 1, 5, 24, 36)
    torch.testing.assert_close(adapted(x, x), load_checkpoint(last)(x, x))  # Lightning checkpoints load too
    extra = torch.load(out / "model.pt", weights_only=True)["extra"]
    assert extra["adapted_from"] == str(tiny_ckpt) and extra["steps"] == 6 and extra["recordings"] == [str(dots)]


def test_adapt_json(tmp_path, dots, tiny_ckpt, capsys):
    import json

    code, out, err = _run(capsys, "--checkpoint", str(tiny_ckpt), "--data", str(dots), "--out", str(tmp_path / "j"),
                          "--epochs", "1", "--steps-per-epoch", "2", "--scale", "1", "--json",
                          "module.lr_consistency=0")
    assert code == 0, err[-2000:]
    result = json.loads(out)
    assert result["steps"] == 2 and result["windows"] == 9 and result["scales"] == [1.0]
    assert Path(result["model"]).is_file() and result["last_loss"] > 0


def test_adapt_refuses_bad_input_in_one_line(tmp_path, dots, tiny_ckpt, capsys):
    mono = write_dots(tmp_path, "mono", seconds=0.2, cameras=("left",), gt=False)
    empty = write_dots(tmp_path, "empty", seconds=0.2, cameras=(), gt=False)
    apart = write_dots(tmp_path, "apart", seconds=0.2, gt=False, offset=(0.0, 0.3))  # never both at once
    base = ["--checkpoint", str(tiny_ckpt), "--out", str(tmp_path / "bad"), "--scale", "1", "--data"]
    cases = [
        ([str(tmp_path / "missing.hdf5")], "missing.hdf5: does not exist"),
        ([str(mono)], "has no events for the right camera"),
        ([str(empty)], "holds no events in either camera"),
        ([str(apart)], "has no 50 ms window where both cameras have at least 200 events"),
        ([str(dots), "--crop", "80", "80"], "the crop 80x80 is larger than this recording's 64x96 frames"),
        ([str(dots), "--lr", "-1"], "--lr -1.0: must be positive"),
        ([str(dots), "--scale", "9"], "--scale 9: scale 9 is outside"),
        ([str(dots), "module.ssim=2"], "section 'module': ssim must be between 0 and 1"),
        ([str(dots), "data.bogus=1"], "section 'data'"),
    ]
    for extra, message in cases:
        code, _, err = _run(capsys, *base, *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (extra, err)
    code, _, err = _run(capsys, *base[:-1], "--data", str(dots), "--checkpoint", str(tmp_path / "none.pt"))
    assert code == 2 and "none.pt: checkpoint does not exist" in err


def test_resuming_another_network_is_refused(tmp_path, dots, tiny_ckpt, capsys):
    common = ["--data", str(dots), "--out", str(tmp_path / "run"), "--steps-per-epoch", "2", "--scale", "1", "-q"]
    assert _run(capsys, "--checkpoint", str(tiny_ckpt), "--epochs", "1", *common)[0] == 0
    other = tmp_path / "other.pt"
    save_checkpoint(build_stereo_net({**yaml.safe_load(TINY.read_text()), "feature_filters": 3}), other)
    code, _, err = _run(capsys, "--checkpoint", str(other), "--epochs", "2", *common)
    assert code == 2 and "last.ckpt: adapts a different network" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ it works
@pytest.mark.slow
def test_adaptation_without_ground_truth_lowers_the_error_of_a_biased_network(tmp_path, capsys):
    """A network trained on labels of a wrongly scaled rig (disparities 1.3x too large) is
    adapted on a recording of the true rig whose ground truth the app cannot see; the error
    measured afterwards with that ground truth is lower."""
    from evstereo.models.losses import smooth_l1
    from evstereo.datasets.torch_datasets import RecordingDataset

    rec = write_dots(tmp_path, "rig", seconds=0.6)
    torch.manual_seed(0)
    net = load_checkpoint(ROOT / "evstereo" / "checkpoints" / "fast.pt")
    ds = RecordingDataset(rec, SampleSpec.for_input(net.input_spec))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(30):  # the biased network: supervised on disparities scaled 1.3x
        b = default_collate([ds[int(i)] for i in torch.randint(0, len(ds), (2,))])
        loss = smooth_l1(net(b["left"], b["right"]), 1.3 * b["disparity"], b["valid"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    biased = tmp_path / "biased.pt"
    save_checkpoint(net, biased)
    before = gt_error(load_checkpoint(biased), rec)

    hidden = write_dots(tmp_path / "hidden", "rig", seconds=0.6, gt=False)  # the same events, no ground truth
    code, _, err = _run(capsys, "--checkpoint", str(biased), "--data", str(hidden),
                        "--out", str(tmp_path / "adapted"), "--scale", "1", "--epochs", "2",
                        "--steps-per-epoch", "20", "--lr", "1e-3", "-q")
    assert code == 0, err[-2000:]
    after = gt_error(load_checkpoint(tmp_path / "adapted" / "model.pt"), rec)
    print(f"mean disparity error: biased {before:.3f} px, adapted {after:.3f} px")
    assert before > 1.0 and after < 0.8 * before, (before, after)
