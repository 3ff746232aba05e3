"""The bi-level search's two halves: time blocks, not interleaved neighbouring frames."""

from __future__ import annotations

import pytest

from evstereo.datasets.splits import search_halves


@pytest.mark.parametrize("lengths", [[200], [45, 130, 7], [8], [41, 41]])
def test_halves_are_time_blocks_with_a_gap_and_balanced(lengths):
    weights, arch = search_halves(lengths, block=20, gap=2)
    assert weights and arch and not set(weights) & set(arch)
    recording = {}
    start = 0
    for r, n in enumerate(lengths):
        recording.update({i: r for i in range(start, start + n)})
        start += n
    # no frame of one half within the gap of a frame of the other, in the same recording
    closest = min(abs(a - w) for a in arch for w in weights if recording[a] == recording[w]) \
        if any(recording[a] == recording[w] for a in arch for w in weights) else None
    assert closest is None or closest > 2
    if sum(lengths) >= 80:
        assert abs(len(weights) - len(arch)) <= 20  # within a block
        assert len(weights) + len(arch) >= 0.85 * sum(lengths)  # the gaps cost 2 frames of 20


def test_alternate_frames_would_fail_the_gap_rule_and_bad_arguments_are_refused():
    weights, arch = search_halves([200])
    assert weights[:18] == list(range(18)) and arch[:18] == list(range(20, 38))
    with pytest.raises(ValueError, match="too few"):
        search_halves([1])
    with pytest.raises(ValueError):
        search_halves([100], block=0)
