"""How much signal is in one architecture step? The per-batch signal-to-noise of each decoded choice.

    python scripts/arch_gradient_snr.py SEARCH_DIR [--batches 80] [--seed 7] [--checkpoint NAME]

Loads a search's supernet (SEARCH_DIR/checkpoints/last.ckpt unless --checkpoint names another
file there), takes the architecture loss's gradient (task loss plus the budget penalty, exactly
as the search's architecture step: ``StereoSearchModule.arch_backward``) on --batches batches of
the search's own "arch" half, and for every choice the decoder makes (each chosen edge's
operation against its runner-up, each node's second input against its best unchosen one, each
level path against the next most probable) reports how fast one step along the negative
gradient would widen (+) or narrow (-) that choice's lead, per batch: its mean, its standard
deviation and their ratio, the per-batch SNR. A step of the search follows one batch, so with
an SNR s a choice needs about (2 / s)^2 batches before the sign of its mean gradient shows at
two standard deviations; a choice whose mean gradient narrows its lead is being undone.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evstereo.search.decode import END_LEVEL, edge_index, path_log_probability, ranked_paths, softmax  # noqa: E402
from evstereo.search.genotypes import NUM_NODES, PRIMITIVES  # noqa: E402

PARTS = tuple(END_LEVEL)  # "feature", "matching"
Params = dict[str, np.ndarray]  # "feature_alphas", "feature_betas", "matching_alphas", "matching_betas"


@dataclass
class Choice:
    name: str
    lead: Callable[[Params], float]  # how far the decoded option leads its rival, at any weights


def _op_lead(key: str, edge: int, best: int, rival: int) -> Callable[[Params], float]:
    return lambda p: float(softmax(p[key][edge])[best] - softmax(p[key][edge])[rival])


def _edge_lead(key: str, kept: tuple[int, int], dropped: tuple[int, int]) -> Callable[[Params], float]:
    return lambda p: float(softmax(p[key][kept[0]])[kept[1]] - softmax(p[key][dropped[0]])[dropped[1]])


def _path_lead(key: str, best: tuple[int, ...], rival: tuple[int, ...]) -> Callable[[Params], float]:
    return lambda p: path_log_probability(p[key], best) - path_log_probability(p[key], rival)


def choices(params: Params) -> list[Choice]:
    """Every choice of the decoded genotype at ``params`` (as ``decode_cell`` and the path
    decoder make them), each with its lead as a function of the architecture weights. A 'zero'
    op never wins an edge, as in decode_cell."""
    usable = [i for i, p in enumerate(PRIMITIVES) if p != "zero"]
    out = []
    for part in PARTS:
        key = f"{part}_alphas"
        w = softmax(np.asarray(params[key], np.float64))
        for k in range(NUM_NODES):
            edges = []
            for src in range(2 + k):
                e = edge_index(k, src)
                best, rival = sorted(usable, key=lambda i: -w[e, i])[:2]
                edges.append((w[e, best], src, e, best, rival))
            edges.sort(key=lambda c: -c[0])
            for _, src, e, best, rival in edges[:2]:
                out.append(Choice(f"{part} node {k} input {src}: {PRIMITIVES[best]} over {PRIMITIVES[rival]}",
                                  _op_lead(key, e, best, rival)))
            if len(edges) > 2:
                (_, s2, e2, b2, _), (_, s3, e3, b3, _) = edges[1], edges[2]
                out.append(Choice(f"{part} node {k}: input {s2} over {s3}", _edge_lead(key, (e2, b2), (e3, b3))))
        (best, _), (rival, _) = ranked_paths(params[f"{part}_betas"], END_LEVEL[part])[:2]
        out.append(Choice(f"{part} path {list(best)} over {list(rival)}",
                          _path_lead(f"{part}_betas", best, rival)))
    return out


def lead_changes(choice: Choice, params: Params, gradients: list[Params]) -> np.ndarray:
    """Per batch: the rate at which a step along that batch's negative gradient changes the
    choice's lead (central difference; a step of 1e-3 in the largest weight)."""
    rates = []
    for g in gradients:
        eps = 1e-3 / max(float(np.abs(v).max()) for v in g.values())
        up = {k: params[k] - eps * g[k] for k in params}
        down = {k: params[k] + eps * g[k] for k in params}
        rates.append((choice.lead(up) - choice.lead(down)) / (2 * eps))
    return np.asarray(rates)


def snr_table(params: Params, gradients: list[Params]) -> list[dict]:
    """One row per decoded choice: its lead, the mean and SD of its per-batch change, the SNR."""
    rows = []
    for c in choices(params):
        r = lead_changes(c, params, gradients)
        sd = float(r.std(ddof=1)) if len(r) > 1 else float("nan")
        rows.append({"choice": c.name, "lead": c.lead(params), "mean": float(r.mean()), "sd": sd,
                     "snr": float(r.mean()) / sd if sd > 0 else float("nan")})
    return rows


def measure(search_dir: Path, checkpoint: str, batches: int, seed: int) -> tuple[Params, list[Params]]:
    """The supernet's architecture weights and the architecture gradient on ``batches`` batches."""
    import torch

    from evstereo.datasets.datamodule import StereoDataModule
    from evstereo.training.modules import StereoSearchModule

    ckpt = torch.load(search_dir / "checkpoints" / checkpoint, map_location="cpu", weights_only=True)
    module = StereoSearchModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    module.train()  # BatchNorm on batch statistics, as in the search's architecture step
    data = {**ckpt["datamodule_hyper_parameters"], "search_split": True, "arch_batches": 1, "progress": False}
    dm = StereoDataModule(**data)
    dm.setup("fit")
    torch.manual_seed(seed)
    arch = dm.train_dataloader().iterables["arch"]
    keys = ("feature_alphas", "feature_betas", "matching_alphas", "matching_betas")
    weights = dict(zip(keys, module.model.arch_parameters()))
    gradients = []
    while len(gradients) < batches:
        for batch in arch:
            module.zero_grad(set_to_none=True)
            module.arch_backward(batch, lambda loss: loss.backward())
            gradients.append({k: w.grad.double().numpy().copy() for k, w in weights.items()})
            if len(gradients) == batches:
                break
    return {k: w.detach().double().numpy() for k, w in weights.items()}, gradients


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/arch_gradient_snr.py", description=__doc__.splitlines()[0])
    ap.add_argument("search_dir", type=Path)
    ap.add_argument("--batches", type=int, default=80)
    ap.add_argument("--seed", type=int, default=7, help="order of the batches")
    ap.add_argument("--checkpoint", default="last.ckpt", help="file under SEARCH_DIR/checkpoints")
    args = ap.parse_args(argv)
    if args.batches < 2:
        ap.error("--batches must be at least 2 (a standard deviation needs two)")
    path = args.search_dir / "checkpoints" / args.checkpoint
    if not path.is_file():
        print(f"error: {path}: no such search checkpoint", file=sys.stderr)
        return 2
    try:
        import torch

        torch.set_num_threads(1)
        params, gradients = measure(args.search_dir, args.checkpoint, args.batches, args.seed)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        print(f"error: {path}: not a search checkpoint of this version ({exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    rows = snr_table(params, gradients)
    print(f"{args.search_dir}: {len(rows)} decoded choices, {args.batches} batches; per batch, the change of each "
          "choice's lead along the negative gradient:")
    for r in rows:
        print(f"  {r['choice']:52s} lead {r['lead']:+.4f}  mean {r['mean']:+.2e}  sd {r['sd']:.2e}  SNR {r['snr']:+.3f}")
    snr = np.array([r["snr"] for r in rows])
    t = snr * np.sqrt(args.batches)
    med = float(np.median(np.abs(snr)))
    print(f"median |SNR| {med:.3f} (a step follows one batch: about {(2 / med) ** 2:.0f} batches per choice "
          f"for two standard deviations); mean gradient against the choice for {(snr < 0).sum()} of {len(snr)} "
          f"({(t < -2).sum()} at two standard deviations), for it at two standard deviations: {(t > 2).sum()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
