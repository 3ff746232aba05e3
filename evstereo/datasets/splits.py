"""MVSEC indoor_flying stereo splits exactly as the peers use them (docs/method.md §6.3).

Split k tests on indoor_flying k and trains on the other two sequences. Frame numbers are
indices of the left camera's ground-truth depth frames (inclusive ranges). The test frames
are shuffled with seed 0; the first 200 are validation, the rest test. The public record
does not say which generator the peers seeded, so we use ``numpy.random.RandomState(0)``
(a fixed, documented choice: the same frames on every machine).
"""

from __future__ import annotations

import numpy as np

TEST_RANGES = {1: (140, 1200), 2: (120, 1420), 3: (73, 1615)}
TRAIN_RANGES = {1: (80, 1259), 2: (160, 1579), 3: (125, 1814)}
NUM_VALIDATION = 200
SHUFFLE_SEED = 0


def scene_name(sequence: int) -> str:
    return f"indoor_flying{sequence}"


def mvsec_split(split: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{'train' | 'val' | 'test': [(scene name, frame indices)]} for MVSEC split 1, 2 or 3."""
    if split not in TEST_RANGES:
        raise ValueError(f"MVSEC split must be 1, 2 or 3, not {split!r}")
    a, b = TEST_RANGES[split]
    shuffled = np.random.RandomState(SHUFFLE_SEED).permutation(np.arange(a, b + 1))
    train = []
    for seq in (1, 2, 3):
        if seq != split:
            lo, hi = TRAIN_RANGES[seq]
            train.append((scene_name(seq), np.arange(lo, hi + 1)))
    return {
        "train": train,
        "val": [(scene_name(split), shuffled[:NUM_VALIDATION])],
        "test": [(scene_name(split), shuffled[NUM_VALIDATION:])],
    }


SEARCH_BLOCK_FRAMES = 20  # 1 s of MVSEC's 20 Hz ground truth
SEARCH_GAP_FRAMES = 2  # dropped between blocks: neighbouring windows overlap in time and content


def search_halves(lengths: list[int], block: int = SEARCH_BLOCK_FRAMES,
                  gap: int = SEARCH_GAP_FRAMES) -> tuple[list[int], list[int]]:
    """Indices (into the concatenation of recordings of ``lengths`` frames, in time order) of the
    bi-level search's two halves: the weights' and the architecture's.

    Alternating single frames put near-duplicate neighbours (50 ms apart, overlapping windows)
    into both halves, so the architecture step was judged on frames the weights had just fitted.
    Here each recording is cut into blocks of ``block`` consecutive frames that go to the
    halves in turn (the first block of each recording to the half that has fewer frames so far),
    and the last ``gap`` frames of every block are left out, so that no frame of one half is
    within ``gap`` frames of one of the other. A recording shorter than two blocks is cut in two
    (with a gap of at most a block less one frame); both halves must end up non-empty
    (ValueError otherwise).
    """
    if block < 1 or gap < 0:
        raise ValueError(f"block must be >= 1 and gap >= 0, not {block} and {gap}")
    halves: tuple[list[int], list[int]] = ([], [])
    start = 0
    for n in lengths:
        side = 0 if len(halves[0]) <= len(halves[1]) else 1
        b = min(block, max(1, n // 2))
        g = min(gap, b - 1)
        for b0 in range(0, n, b):
            halves[side].extend(range(start + b0, start + min(b0 + b - g, n)))
            side = 1 - side
        start += n
    if not halves[0] or not halves[1]:
        raise ValueError(f"recordings of {lengths} frames are too few to split into two search halves "
                         f"(blocks of {block} frames)")
    return halves
