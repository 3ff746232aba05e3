"""Procedural surface textures for the simulator: periodic, multi-scale, mip-mapped reflectance.

Each texture is a square, periodic (tileable) reflectance map in (0, 1] that mixes 1/f^beta
fractal noise (contrast at every scale), hard-edged blobs and rectangles (strong edges, the
features event cameras see best) and sometimes stripes. Textures live on surfaces in metric
(u, v) coordinates, so every view of a surface sees the same pattern. A mip pyramid (box
filtered, periodic) lets the ray caster sample at the pixel footprint: without it distant
surfaces alias and flicker, which would create events that no real camera produces.
Nearly uniform textures (sky, paint) come from :func:`make_plain_texture`; textures cut from
photographs from :mod:`evstereo.simulation.photo_textures`.
"""

from __future__ import annotations

import numpy as np

TEX_SIZE = 512  # texels per side of level 0 (power of two: wrapping is a bit mask)


def _fractal_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Periodic noise with power spectrum ~ 1/f^beta, zero mean and unit std."""
    white = rng.standard_normal((n, n))
    k = np.fft.fftfreq(n)
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    kk[0, 0] = np.inf  # no DC: the mean is set by the caller
    spec = np.fft.fft2(white) * kk ** (-beta / 2)
    out = np.real(np.fft.ifft2(spec))
    return (out - out.mean()) / (out.std() + 1e-12)


def _paint(img: np.ndarray, cy: float, cx: float, mask_fn, half: int, value: float) -> None:
    """Blend ``value`` into a periodic window of ``img`` where ``mask_fn(dy, dx)`` gives coverage."""
    n = img.shape[0]
    offs = np.arange(-half, half + 1)
    rows = (int(cy) + offs) % n
    cols = (int(cx) + offs) % n
    dy = (int(cy) + offs - cy)[:, None]
    dx = (int(cx) + offs - cx)[None, :]
    alpha = mask_fn(dy, dx)
    win = img[np.ix_(rows, cols)]
    img[np.ix_(rows, cols)] = win * (1 - alpha) + value * alpha


def make_texture(rng: np.random.Generator, n: int = TEX_SIZE, contrast: float = 1.0) -> np.ndarray:
    """One random tileable reflectance texture, (n, n) float32 in [0.01, 1]."""
    base = rng.uniform(0.3, 0.7)
    img = base + 0.16 * _fractal_noise(rng, n, rng.uniform(1.6, 2.4))
    img += 0.06 * _fractal_noise(rng, n, rng.uniform(0.6, 1.2))  # fine grain
    # Blobs: soft-edged ellipses (a 1-texel ramp keeps the edge band-limited).
    for _ in range(int(rng.integers(15, 60))):
        r = float(np.exp(rng.uniform(np.log(3), np.log(45))))
        ax, ay = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
        half = int(np.ceil(max(ax, ay))) + 2
        value = rng.uniform(0.05, 0.95)

        def disc(dy, dx, ax=ax, ay=ay):
            dist = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
            return np.clip((1.0 - dist) * min(ax, ay) + 0.5, 0.0, 1.0)

        _paint(img, rng.uniform(0, n), rng.uniform(0, n), disc, half, value)
    # Rectangles: long straight edges in both directions (posters, tiles, shelves).
    for _ in range(int(rng.integers(4, 16))):
        hw, hh = rng.uniform(3, 60), rng.uniform(3, 60)
        half = int(np.ceil(max(hw, hh))) + 2
        value = rng.uniform(0.05, 0.95)

        def rect(dy, dx, hw=hw, hh=hh):
            cov = np.clip(hw - np.abs(dx) + 0.5, 0, 1) * np.clip(hh - np.abs(dy) + 0.5, 0, 1)
            return cov

        _paint(img, rng.uniform(0, n), rng.uniform(0, n), rect, half, value)
    if rng.random() < 0.35:
        # Stripes whose period divides n, so the texture stays tileable.
        period = n // int(rng.choice([8, 16, 32, 64]))
        ys, xs = np.mgrid[0:n, 0:n]
        coord = xs if rng.random() < 0.5 else ys
        stripes = np.clip(np.sin(2 * np.pi * coord / period) * 4, -1, 1)
        img *= 1.0 + 0.25 * stripes
    img = np.clip(img, 0.03, 1.0)
    # Contrast acts on log reflectance, which is what the event threshold sees.
    log = np.log(img)
    mean = log.mean()
    img = np.exp(mean + contrast * (log - mean))
    return np.clip(img, 0.01, 1.0).astype(np.float32)


def make_plain_texture(rng: np.random.Generator, mean: float, log_std: float, n: int = TEX_SIZE,
                       beta: float = 2.6) -> np.ndarray:
    """A nearly uniform tileable texture (sky, paint, glass): ``mean`` times smooth 1/f^beta
    noise of ``log_std`` in log units; (n, n) float32 in [0.01, 1], like :func:`make_texture`."""
    img = mean * np.exp(log_std * _fractal_noise(rng, n, beta))
    return np.clip(img, 0.01, 1.0).astype(np.float32)


def mip_offsets(n: int = TEX_SIZE) -> np.ndarray:
    """Start of each mip level in a flattened pyramid (level l is (n >> l) squared)."""
    sizes = []
    s = n
    while s >= 4:
        sizes.append(s * s)
        s //= 2
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def build_mip_atlas(textures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack textures with their mip pyramids: ((n_tex, total) float32, level offsets)."""
    n = textures[0].shape[0]
    offsets = mip_offsets(n)
    atlas = np.empty((len(textures), offsets[-1]), np.float32)
    for i, tex in enumerate(textures):
        level = tex.astype(np.float32)
        for lv in range(len(offsets) - 1):
            atlas[i, offsets[lv] : offsets[lv + 1]] = level.ravel()
            s = level.shape[0] // 2
            level = level.reshape(s, 2, s, 2).mean(axis=(1, 3))  # periodic box filter
    return atlas, offsets
