"""Genotypes as data (YAML round trip, validation) and decoding (top-2 edges, Viterbi)."""

from __future__ import annotations

import numpy as np
import pytest

from evstereo.errors import InputError
from evstereo.search.decode import NUM_EDGES, decode_cell, edge_index, viterbi_path
from evstereo.search.genotypes import REFERENCE, CellGenotype, Genotype, PRIMITIVES


def test_yaml_round_trip_and_printing(tmp_path):
    path = tmp_path / "g.yaml"
    REFERENCE.save(path)
    back = Genotype.load(path)
    assert back == REFERENCE
    assert "path [1, 2, 2, 1]" in str(REFERENCE) and "snn_b5" in path.read_text()


def test_invalid_genotypes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot take input 3"):
        CellGenotype((((0, "snn_b3"), (1, "snn_b3")), ((3, "snn_b3"), (1, "snn_b3")), ((0, "snn_b3"), (1, "snn_b3"))))
    with pytest.raises(ValueError, match="jumps"):
        Genotype(REFERENCE.feature_cell, (2, 0), REFERENCE.matching_cell, (1,))
    bad = tmp_path / "bad.yaml"
    bad.write_text("feature: {cell: [], path: [0]}\n")
    with pytest.raises(InputError, match="bad.yaml.*not a valid genotype"):
        Genotype.load(bad)


def test_resolve_takes_every_way_a_config_names_a_genotype(tmp_path, monkeypatch):
    other = Genotype(REFERENCE.feature_cell, (0, 0), REFERENCE.matching_cell, (1, 0))
    (tmp_path / "cfg").mkdir()
    other.save(tmp_path / "cfg" / "g.yaml")
    assert Genotype.resolve("reference") is REFERENCE and Genotype.resolve(None) is REFERENCE
    assert Genotype.resolve(other) is other
    assert Genotype.resolve(other.to_data()) == other
    assert Genotype.resolve("g.yaml", tmp_path / "cfg") == other  # relative to the config's folder
    monkeypatch.chdir(tmp_path)
    assert Genotype.resolve("cfg/g.yaml", tmp_path / "elsewhere") == other  # else relative to the cwd
    with pytest.raises(InputError, match="missing.yaml.*does not exist"):
        Genotype.resolve("missing.yaml", tmp_path / "cfg")
    with pytest.raises(TypeError, match="not 3"):
        Genotype.resolve(3)


def test_decode_cell_takes_top_two_edges_per_node():
    alphas = np.zeros((NUM_EDGES, len(PRIMITIVES)))
    sk, b3, b5 = (PRIMITIVES.index(p) for p in ("skip_connect", "snn_b3", "snn_b5"))
    alphas[edge_index(0, 0), b3] = 3
    alphas[edge_index(0, 1), b5] = 2
    alphas[edge_index(1, 2), sk] = 4  # node 1: strongest edges are from inputs 2 and 0
    alphas[edge_index(1, 0), b5] = 3
    alphas[edge_index(1, 1), b3] = 0.5
    alphas[edge_index(2, 3), b3] = 5
    alphas[edge_index(2, 1), b5] = 4
    cell = decode_cell(alphas)
    assert cell.nodes[0] == ((0, "snn_b3"), (1, "snn_b5"))
    assert cell.nodes[1] == ((0, "snn_b5"), (2, "skip_connect"))
    assert cell.nodes[2] == ((1, "snn_b5"), (3, "snn_b3"))


def test_viterbi_finds_the_most_probable_valid_path():
    betas = np.zeros((4, 4, 3))
    betas[0, 0] = [0, 0, 5]   # stem -> level 1
    betas[1, 1] = [0, 0, 5]   # -> level 2
    betas[2, 2] = [0, 5, 0]   # stay at 2
    betas[3, 2] = [5, 0, 0]   # -> level 1
    assert viterbi_path(betas) == (1, 2, 2, 1)
    assert viterbi_path(betas[:2], end_level=0) != (1, 2)
    assert viterbi_path(betas[:2], end_level=0)[-1] == 0
    with pytest.raises(ValueError, match="cannot be reached"):
        viterbi_path(betas[:1], end_level=3)


def _brute_force_path(betas: np.ndarray, end_level: int | None) -> tuple[tuple[int, ...], float]:
    """Every move sequence scored with the supernet's own move probabilities (torch)."""
    import itertools

    import torch

    from evstereo.search.decode import MOVES
    from evstereo.search.trellis import move_probabilities

    p = move_probabilities(torch.from_numpy(betas)).numpy()
    best, best_p = None, -1.0
    for moves in itertools.product(range(len(MOVES)), repeat=len(betas)):
        level, prob, path = 0, 1.0, []
        for layer, m in enumerate(moves):
            prob *= p[layer, level, m]
            level += MOVES[m]
            if not 0 <= level < 4:
                break  # an impossible move (probability 0)
            path.append(level)
        if prob > 0 and (end_level is None or level == end_level) and prob > best_p:
            best, best_p = tuple(path), prob
    return best, best_p


@pytest.mark.parametrize("spread", [0.05, 1.0, 5.0])  # flat, moderate, peaked betas
def test_viterbi_equals_a_brute_force_search_over_valid_paths(spread):
    """On random betas the decoded path is the most probable one under the supernet's masked
    move probabilities (an unmasked softmax decoded another path on most flat beta sets)."""
    from evstereo.search.decode import path_log_probability

    rng = np.random.default_rng(int(spread * 100))
    for trial in range(150):
        n_layers = int(rng.integers(1, 7))
        betas = spread * rng.standard_normal((n_layers, 4, 3))
        end = None if trial % 2 else 0
        want, want_p = _brute_force_path(betas, end)
        got = viterbi_path(betas, end_level=end)
        got_p = float(np.exp(path_log_probability(betas, got)))
        assert path_log_probability(betas, (2,) + got[1:]) == -np.inf  # no jump from level 0 to 2
        assert got_p == pytest.approx(want_p, rel=1e-9), (betas, got, want)
        assert got == want or got_p == pytest.approx(want_p, rel=1e-12)  # a tie may pick either
