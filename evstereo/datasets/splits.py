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
