"""Decoding architecture weights into a genotype: top-2 edges per node, Viterbi over betas.

Edge order in a cell: node k (0, 1, 2) has inputs 0 .. k + 1, so edges are numbered
node 0: 0-1, node 1: 2-4, node 2: 5-8 (nine in all). Betas are per (layer, level) over the
three moves out of that cell: to the finer level, the same level, the coarser level.
"""

from __future__ import annotations

import itertools

import numpy as np

from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES, CellGenotype

MOVES = (-1, 0, 1)  # finer, same, coarser
# the level each part's decoded path must end at (None: free): the features are read at level 0
END_LEVEL: dict[str, int | None] = {"feature": 0, "matching": None}


def edge_index(node: int, src: int) -> int:
    """Position of edge (src -> node) in the nine-edge list."""
    return sum(2 + k for k in range(node)) + src


NUM_EDGES = edge_index(NUM_NODES, 0)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (float64 in, float64 out; stable for large logits)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def valid_moves(n_layers: int) -> np.ndarray:
    """[n_layers, NUM_LEVELS, 3] bool: True where a move stays inside levels 0..NUM_LEVELS-1."""
    target = np.arange(NUM_LEVELS)[:, None] + np.asarray(MOVES)[None, :]
    return np.broadcast_to((target >= 0) & (target < NUM_LEVELS), (n_layers, NUM_LEVELS, len(MOVES))).copy()


def move_log_probabilities(betas: np.ndarray) -> np.ndarray:
    """log softmax of each cell's betas over its possible moves only (-inf for the impossible
    ones): the move probabilities the supernet mixes with (``trellis.move_probabilities``)."""
    betas = np.asarray(betas, np.float64)
    logits = np.where(valid_moves(betas.shape[0]), betas, -np.inf)
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def path_log_probability(betas: np.ndarray, path: tuple[int, ...]) -> float:
    """log probability of the level sequence ``path`` (starting next to level 0) under the
    supernet's move probabilities (:func:`move_log_probabilities`); -inf for an impossible path."""
    logp = move_log_probabilities(betas)
    levels = (0, *path)
    total = 0.0
    for layer in range(len(path)):
        move = levels[layer + 1] - levels[layer]
        if move not in MOVES or not 0 <= levels[layer + 1] < NUM_LEVELS:
            return -np.inf
        total += logp[layer, levels[layer], MOVES.index(move)]
    return float(total)


def valid_paths(n_layers: int, end_level: int | None = None) -> list[tuple[int, ...]]:
    """Every level path of ``n_layers`` the decoder can return (ending at ``end_level`` if given)."""
    paths = []
    for p in itertools.product(range(NUM_LEVELS), repeat=n_layers):
        if all(abs(b - a) <= 1 for a, b in zip((0, *p), p)) and end_level in (None, p[-1]):
            paths.append(p)
    return paths


def ranked_paths(betas: np.ndarray, end_level: int | None = None) -> list[tuple[tuple[int, ...], float]]:
    """The valid paths with their log probabilities under ``betas``, most probable first."""
    betas = np.asarray(betas, np.float64)
    scored = [(p, path_log_probability(betas, p)) for p in valid_paths(len(betas), end_level)]
    return sorted(scored, key=lambda s: -s[1])


def decode_cell(alphas: np.ndarray, primitives: tuple[str, ...] = PRIMITIVES) -> CellGenotype:
    """[NUM_EDGES, len(primitives)] alphas -> each node's two strongest edges with their best op.

    A 'zero' op, if the space has one, never wins an edge (DARTS' rule).
    """
    w = softmax(np.asarray(alphas, np.float64))
    usable = [i for i, p in enumerate(primitives) if p != "zero"]
    nodes = []
    for k in range(NUM_NODES):
        cands = []
        for src in range(2 + k):
            row = w[edge_index(k, src)]
            best = max(usable, key=lambda i: row[i])
            cands.append((row[best], src, primitives[best]))
        top = sorted(cands, key=lambda c: -c[0])[:2]
        nodes.append(tuple((src, op) for _, src, op in sorted(top, key=lambda c: c[1])))
    return CellGenotype(tuple(nodes))


def viterbi_path(betas: np.ndarray, end_level: int | None = None) -> tuple[int, ...]:
    """Most probable level sequence through the trellis, under the supernet's move probabilities
    (softmax over the possible moves only: a softmax over all three would charge a cell at the
    finest or coarsest level for a move it cannot make, and pick other paths).

    ``betas[l, s]`` holds the three move weights out of level s *before* layer l (row 0 is the
    stem, which sits at level 0). Returns one level per layer; ``end_level`` pins the last one.
    """
    betas = np.asarray(betas, np.float64)
    n_layers = betas.shape[0]
    logp = move_log_probabilities(betas)
    score = np.full(NUM_LEVELS, -np.inf)
    score[0] = 0.0
    back = np.zeros((n_layers, NUM_LEVELS), np.int64)
    for layer in range(n_layers):
        new = np.full(NUM_LEVELS, -np.inf)
        for src in range(NUM_LEVELS):
            if not np.isfinite(score[src]):
                continue
            for m, move in enumerate(MOVES):
                dst = src + move
                if 0 <= dst < NUM_LEVELS and score[src] + logp[layer, src, m] > new[dst]:
                    new[dst] = score[src] + logp[layer, src, m]
                    back[layer, dst] = src
        score = new
    last = int(np.argmax(score)) if end_level is None else end_level
    if not np.isfinite(score[last]):
        raise ValueError(f"level {last} cannot be reached in {n_layers} layers")
    path = [last]
    for layer in range(n_layers - 1, 0, -1):
        path.append(int(back[layer, path[-1]]))
    return tuple(reversed(path))
