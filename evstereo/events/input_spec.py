"""The input description a network owns: which representation, how many bins and time steps, which window.

``InputSpec`` is the one contract between events and a network. A network exposes it as
``model.input_spec`` (``StereoNet`` builds it from its ``NetConfig``, ``SGBMStereo`` is given
one); training samples, evaluation, the live engine and the benchmarks read it from the
network and never restate it. Tensors are [T, C, H, W] per camera (``shape_tc``):

- ``sbt`` / ``voxel``: ``bins`` temporal bins split into ``time_steps`` steps of
  C = bins / time_steps channels (bins must be a multiple of time_steps);
- ``counts`` / ``spikes``: T = bins steps of C = 2 channels (the polarities).

``for_network`` is the inverse rule (a network's ``in_channels`` and ``time_steps`` -> bins).
The window is in microseconds; ``DEFAULT_WINDOW_US`` (50 ms) is the project's only default.
Ground-truth validity (the disparity cap of the MVSEC protocol) is not part of a network's
input: see ``evstereo.datasets.samples.SampleSpec``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REPRESENTATIONS = ("sbt", "voxel", "counts", "spikes")
POLARITY_REPRESENTATIONS = ("counts", "spikes")  # C = 2 polarities, T = bins
DEFAULT_WINDOW_US = 50_000


@dataclass(frozen=True)
class InputSpec:
    """How a window of events becomes a network's input, [T, C, H, W] per camera (see the module doc)."""

    representation: str = "sbt"
    bins: int = 5
    time_steps: int = 1
    window_us: int = DEFAULT_WINDOW_US

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, not {self.representation!r}")
        for name in ("bins", "time_steps", "window_us"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.representation not in POLARITY_REPRESENTATIONS and self.bins % self.time_steps:
            raise ValueError(f"bins ({self.bins}) must be a multiple of time_steps ({self.time_steps})")

    @classmethod
    def for_network(cls, representation: str, in_channels: int, time_steps: int,
                    window_us: int = DEFAULT_WINDOW_US) -> "InputSpec":
        """The input of a network with ``in_channels`` channels per step over ``time_steps`` steps."""
        if representation in POLARITY_REPRESENTATIONS:
            if in_channels != 2:
                raise ValueError(f"{representation} input has 2 channels (polarities), not {in_channels}")
            bins = time_steps
        else:
            bins = in_channels * time_steps
        return cls(representation, bins, time_steps, window_us)

    @property
    def shape_tc(self) -> tuple[int, int]:
        """(T, C) of the per-camera tensor [T, C, H, W]."""
        if self.representation in POLARITY_REPRESENTATIONS:
            return self.bins, 2
        return self.time_steps, self.bins // self.time_steps

    def as_dict(self) -> dict:
        return asdict(self)


def sample_input(model: object) -> InputSpec:
    """The input one output of ``model`` is computed from: its ``context_spec`` (a stateful
    network's context windows and its window) where it has one, else its ``input_spec``."""
    return getattr(model, "context_spec", None) or model.input_spec
