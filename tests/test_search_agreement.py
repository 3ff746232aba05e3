"""scripts/search_agreement.py: agreement between decoded genotypes, its chance level, and
whether a search had settled."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from search_agreement import agreement, chance_agreement, main, path_lead, settling  # noqa: E402

from evstereo.search.genotypes import PRIMITIVES, REFERENCE, Genotype  # noqa: E402

HANDPICKED = Genotype.from_data(yaml.safe_load((ROOT / "configs/model/handpicked.yaml").read_text())["genotype"])


def test_agreement_counted_by_hand():
    same = agreement(HANDPICKED, HANDPICKED)
    assert same == {p: {"input": 6, "kind": 6, "op": 6, "path": True} for p in ("feature", "matching")}
    # hand-picked cell: (0 b3, 1 skip), (1 b3, 2 skip), (2 skip, 3 b3); reference cell: (0 b3, 1 b3),
    # (1 b5, 2 b3), (2 b3, 3 b5): same inputs everywhere; same kind 0, 1, 3 -> 3; same op only 0 b3
    ref = agreement(HANDPICKED, REFERENCE)
    assert ref["feature"] == {"input": 6, "kind": 3, "op": 1, "path": True}  # both (1, 0)
    assert ref["matching"] == {"input": 6, "kind": 3, "op": 1, "path": False}  # (1, 2, 1) vs (1, 2, 2, 1)


def test_chance_level_is_exact_and_matches_uniform_draws():
    chance = chance_agreement({"feature": 2, "matching": 3})
    for part, paths in (("feature", 2), ("matching", 13)):  # feature paths end at level 0
        assert chance[part]["input"] == pytest.approx(2 + 4 / 3 + 1)
        assert chance[part]["kind"] == pytest.approx(13 / 3 * 5 / 9)  # skip 1/3, convolution 2/3
        assert chance[part]["op"] == pytest.approx(13 / 9)
        assert chance[part]["path"] == pytest.approx(1 / paths)
    rng = random.Random(0)

    def draw():
        cell = [[[s, rng.choice(PRIMITIVES)] for s in sorted(rng.sample(range(2 + k), 2))] for k in range(3)]
        return Genotype.from_data({"feature": {"cell": cell, "path": [0, 0]},
                                   "matching": {"cell": cell, "path": [1, 1, 1]}})

    n = 3000
    totals = np.zeros(3)
    for _ in range(n):
        r = agreement(draw(), draw())["feature"]
        totals += (r["input"], r["kind"], r["op"])
    measured = totals / n
    expected = [chance["feature"][k] for k in ("input", "kind", "op")]
    assert np.allclose(measured, expected, atol=0.06), (measured, expected)


def test_settling_and_path_lead():
    a, b = HANDPICKED.to_data(), REFERENCE.to_data()
    history = [{"epoch": 0, "genotype": b}, {"epoch": 1, "genotype": a}, {"epoch": 2, "genotype": a}]
    # the reference differs from the hand-picked genotype in 5 feature edges (of 6 only 0 b3 is shared)
    # and 5 matching edges plus the matching path
    assert settling(history) == [(0, 11), (1, 0), (2, 0)]
    betas = np.zeros((2, 4, 3))
    betas[:, :, 1] = 5.0  # stay at the same level, strongly
    (best, pb), (_, pn) = path_lead(betas, "feature")
    assert best == (0, 0) and pb > 0.95 > pn


def test_cli_prints_pairs_and_refuses_a_bad_source(tmp_path, capsys):
    run = tmp_path / "search"
    run.mkdir()
    (run / "genotype.yaml").write_text(HANDPICKED.to_yaml())
    history = [{"epoch": 0, "genotype": HANDPICKED.to_data(), "feature_betas": np.zeros((2, 4, 3)).tolist(),
                "matching_betas": np.zeros((3, 4, 3)).tolist()}]
    (run / "arch_history.json").write_text(json.dumps(history))
    assert main([f"a={run}", f"b={ROOT / 'configs/model/handpicked.yaml'}"]) == 0
    out = capsys.readouterr().out
    assert "a vs b: feature 6/6/6, path same; matching 6/6/6, path same" in out
    assert "by epoch: 0: 0" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("genotype: {feature: 3}\n")
    assert main([f"x={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: not a genotype") and "\n" not in err
