"""One input contract: the network owns its InputSpec; samples, SGBM and the engine read it from there."""

from __future__ import annotations

import dataclasses

import pytest

from evstereo.datasets.samples import SampleSpec
from evstereo.events import InputSpec
from evstereo.events.input_spec import DEFAULT_WINDOW_US
from evstereo.models import SGBMStereo
from evstereo.models.stereo_net import NetConfig
from evstereo.recordings.recording import MVSEC_MAX_VALID_DISPARITY


@pytest.mark.parametrize("representation, channels, steps, bins, tc", [
    ("sbt", 5, 1, 5, (1, 5)), ("voxel", 2, 5, 10, (5, 2)), ("counts", 2, 4, 4, (4, 2)), ("spikes", 2, 3, 3, (3, 2)),
])
def test_the_channel_rule_runs_both_ways(representation, channels, steps, bins, tc):
    spec = InputSpec.for_network(representation, channels, steps)
    assert (spec.bins, spec.time_steps, spec.window_us) == (bins, steps, DEFAULT_WINDOW_US)
    assert spec.shape_tc == tc and spec.shape_tc[1] == channels


def test_bad_input_descriptions_are_refused_and_specs_are_frozen():
    with pytest.raises(ValueError, match="2 channels"):
        InputSpec.for_network("counts", 5, 1)
    with pytest.raises(ValueError, match="multiple of time_steps"):
        InputSpec("sbt", bins=5, time_steps=2)
    with pytest.raises(ValueError, match="representation"):
        InputSpec("frames")
    with pytest.raises(ValueError, match="window_us"):
        InputSpec(window_us=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        InputSpec().bins = 3


def test_networks_own_their_input_and_samples_add_only_the_ground_truth_rules():
    cfg = NetConfig(max_disparity=36, in_channels=2, time_steps=4, representation="counts", window_us=20_000)
    spec = cfg.input_spec
    assert spec == InputSpec("counts", 4, 4, 20_000)
    assert SGBMStereo().input_spec == InputSpec() and SGBMStereo(input_spec=spec).input_spec is spec
    samples = SampleSpec.for_input(spec)
    assert samples.input == spec and samples.shape_tc == spec.shape_tc
    # the GT validity cap is the protocol's, not the network's range
    assert samples.gt_max_disparity == MVSEC_MAX_VALID_DISPARITY != cfg.max_disparity
    assert SampleSpec.for_input(spec, gt_max_disparity=None, disparity_quantum=7).disparity_quantum == 7
