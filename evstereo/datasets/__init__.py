"""Training samples from recordings: window -> tensors + GT, transforms, the prepared cache,
torch Datasets, the LightningDataModule, splits.

``samples`` (``SampleSpec``, ``make_sample``), ``transforms`` (stereo-safe crop, flip-and-swap),
``prepared`` (the resumable per-frame cache and ``cache_path``, the one name of a cache file),
``torch_datasets``, ``datamodule`` (``StereoDataModule``), ``splits`` (``mvsec_split``).
Recordings themselves (readers, writer, converters) live in :mod:`evstereo.recordings`; this
package may import it, never the other way round.
"""
