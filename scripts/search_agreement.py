"""How alike are the architectures several searches decoded, and had each search settled?

    python scripts/search_agreement.py NAME=SOURCE [NAME=SOURCE ...]

SOURCE is a search's output folder (its genotype.yaml and arch_history.json), a genotype YAML
or a model config with a ``genotype:`` section. For every pair it prints, per cell, how many
of the six decoded edges take the same input, the same kind (convolution or skip) and the same
operation, and whether the level paths agree, beside what two architectures drawn uniformly
from the decodable space share on average (the chance level). For every search folder it
prints how many of the 14 decoded choices (12 edges, 2 paths) differed from the final genotype
at each epoch, and how far the decoded path is ahead of the next one (path probabilities under
the final betas): a search whose choices still change at its last epoch, or whose two best
paths are near a tie, has not settled.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evstereo.search.decode import END_LEVEL, ranked_paths, valid_paths  # noqa: E402
from evstereo.search.genotypes import NUM_NODES, PRIMITIVES, Genotype  # noqa: E402

PARTS = tuple(END_LEVEL)  # "feature", "matching"


def load_genotype(source: str | Path) -> Genotype:
    """A search folder's, a genotype file's or a model config's genotype."""
    path = Path(source)
    if path.is_dir():
        path = path / "genotype.yaml"
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and "genotype" in data:  # a model config: inline, a path or "reference"
        return Genotype.resolve(data["genotype"], base_dir=path.parent)
    return Genotype.resolve(data)


def _kind(op: str) -> str:
    return "skip" if op == "skip_connect" else "conv"


def agreement(a: Genotype, b: Genotype) -> dict[str, dict]:
    """Per part: edges (of six) with the same input, kind and op node by node, and same path."""
    da, db = a.to_data(), b.to_data()
    out = {}
    for part in PARTS:
        same = {"input": 0, "kind": 0, "op": 0}
        for na, nb in zip(da[part]["cell"], db[part]["cell"]):
            same["input"] += len({s for s, _ in na} & {s for s, _ in nb})
            same["kind"] += len({(s, _kind(o)) for s, o in na} & {(s, _kind(o)) for s, o in nb})
            same["op"] += len({(s, o) for s, o in na} & {(s, o) for s, o in nb})
        out[part] = {**same, "path": da[part]["path"] == db[part]["path"]}
    return out


def chance_agreement(layers: dict[str, int]) -> dict[str, dict]:
    """What two uniform draws share on average, with ``layers[part]`` layers per path: node k
    picks two of its 2 + k inputs (expected overlap 4 / (2 + k)), each edge one of the
    operations (the same kind with probability p_skip^2 + p_conv^2); paths uniform over the
    valid ones."""
    n_ops = len(PRIMITIVES)
    p_skip = PRIMITIVES.count("skip_connect") / n_ops
    p_kind = p_skip ** 2 + (1 - p_skip) ** 2
    inputs = sum(4 / (2 + k) for k in range(NUM_NODES))
    return {part: {"input": inputs, "kind": inputs * p_kind, "op": inputs / n_ops,
                   "path": 1 / len(valid_paths(layers[part], END_LEVEL[part]))} for part in PARTS}


def _flat(data: dict) -> set:
    items = set()
    for part in PARTS:
        items |= {(part, k, tuple(e)) for k, node in enumerate(data[part]["cell"]) for e in node}
        items.add((part, "path", tuple(data[part]["path"])))
    return items


def settling(history: list[dict]) -> list[tuple[int, int]]:
    """(epoch, decoded choices differing from the last epoch's), for every recorded epoch."""
    final = _flat(history[-1]["genotype"])
    return [(int(h["epoch"]), len(final - _flat(h["genotype"]))) for h in history]


def path_lead(betas, part: str) -> list[tuple[tuple[int, ...], float]]:
    """The two most probable valid paths under ``betas`` with their probabilities."""
    return [(p, float(np.exp(lp))) for p, lp in ranked_paths(betas, END_LEVEL[part])[:2]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/search_agreement.py", description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", metavar="NAME=SOURCE")
    args = ap.parse_args(argv)
    named = {}
    for item in args.sources:
        name, _, source = item.partition("=")
        if not source:
            ap.error(f"{item!r}: expected NAME=SOURCE")
        try:
            named[name] = (Path(source), load_genotype(source))
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            print(f"error: {source}: not a genotype ({exc})", file=sys.stderr)
            return 2
    for name, (_, g) in named.items():
        print(f"{name}: {g}")
    first = next(iter(named.values()))[1].to_data()
    chance = chance_agreement({part: len(first[part]["path"]) for part in PARTS})
    print("\nsame input / kind / op (of 6 edges per cell), same path:")
    for (na, (_, a)), (nb, (_, b)) in itertools.combinations(named.items(), 2):
        agr = agreement(a, b)
        print(f"  {na} vs {nb}: " + "; ".join(
            f"{part} {r['input']}/{r['kind']}/{r['op']}, path {'same' if r['path'] else 'differs'}"
            for part, r in agr.items()))
    print("  chance: " + "; ".join(f"{part} {c['input']:.2f}/{c['kind']:.2f}/{c['op']:.2f}, path same "
                                  f"with p = {c['path']:.2f}" for part, c in chance.items()))
    for name, (source, _) in named.items():
        history_file = source / "arch_history.json"
        if not (source.is_dir() and history_file.is_file()):
            continue
        history = json.loads(history_file.read_text())
        if not history:
            continue
        choices = len(_flat(history[-1]["genotype"]))
        print(f"\n{name}: choices (of {choices}) differing from the final genotype, by epoch: "
              + ", ".join(f"{e}: {n}" for e, n in settling(history)))
        for part in PARTS:
            (best, pb), (nxt, pn) = path_lead(history[-1][f"{part}_betas"], part)
            print(f"  {part} path {list(best)} p = {pb:.3f}, next {list(nxt)} p = {pn:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
