"""Surface textures cut from real photographs: natural-image statistics for the simulator.

Procedural textures (:mod:`evstereo.simulation.textures`) have the right power spectrum but
none of the structure of real surfaces (occluding contours, text, fur, bricks, faces). These
textures are random crops of the photographs that ship inside the scikit-image wheel
(:data:`PHOTOGRAPHS`), read from the installed package's files, so nothing is ever downloaded.
No stereo pair is used (scikit-image's ``motorcycle_*`` files are evaluation material).

A texture is made in grey log reflectance, which is what the event threshold sees: the photo
is linearised (sRGB gamma ~2.2), rotated, flipped and scaled at random (never enlarged, which
would blur away its fine detail; a small photo gives a smaller tile, repeated), resampled with
a pre-filter when it shrinks, made periodic by Moisan's periodic-plus-smooth decomposition (the
ray caster wraps textures, and a plain crop would put a hard seam, hence spurious edges and
events, at every tile border) and given a mean and log contrast in the range of the procedural
textures, times ``contrast``. Output format: as :func:`~evstereo.simulation.textures.make_texture`.
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import numpy as np
from scipy import ndimage

from evstereo.simulation.textures import TEX_SIZE

# The photographs used, by their scikit-image name, and their files inside ``skimage/data``.
PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",  # portrait, suit, flag (NASA, public domain)
    "brick": "brick.png",  # brick wall
    "camera": "camera.png",  # cameraman: figure, tripod, sky, grass
    "chelsea": "chelsea.png",  # cat: fur, whiskers
    "coffee": "coffee.png",  # cup on a table
    "coins": "coins.png",  # coins on a plain background
    "grass": "grass.png",  # lawn
    "gravel": "gravel.png",  # gravel ground
    "moon": "moon.png",  # lunar surface
    "page": "page.png",  # a printed page
    "rocket": "rocket.jpg",  # rocket on its pad, sky
    "text": "text.png",  # painted text on a wall
}
PHOTOGRAPHS: tuple[str, ...] = tuple(PHOTO_FILES)

_LOG_FLOOR = 0.02  # linear reflectance added before the log: keeps black text from -inf


@lru_cache(maxsize=None)
def photo_log_reflectance(name: str) -> np.ndarray:
    """Grey log reflectance of one photograph, (H, W) float64, read-only (cached per process).

    Raises ``RuntimeError`` naming the file if scikit-image or its bundled photo is missing.
    """
    from PIL import Image  # a dependency of scikit-image; imported here, so textures.py needs neither

    try:
        path = importlib.resources.files("skimage.data") / PHOTO_FILES[name]
        with importlib.resources.as_file(path) as p, Image.open(p) as im:
            grey = np.asarray(im.convert("L"), np.float64) / 255.0
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(f"photo textures need scikit-image's bundled photograph {PHOTO_FILES[name]} "
                           f"(pip install scikit-image): {exc}") from None
    out = np.log(grey**2.2 + _LOG_FLOOR)  # sRGB-like gamma -> linear, then log
    out.flags.writeable = False
    return out


def make_periodic(img: np.ndarray) -> np.ndarray:
    """Moisan's periodic component of ``img``: the image minus the smooth field that carries
    its border discontinuities, so it tiles without a seam while keeping its interior detail."""
    h, w = img.shape
    v = np.zeros_like(img)
    v[0, :] += img[-1, :] - img[0, :]
    v[-1, :] += img[0, :] - img[-1, :]
    v[:, 0] += img[:, -1] - img[:, 0]
    v[:, -1] += img[:, 0] - img[:, -1]
    q = np.cos(2 * np.pi * np.arange(h) / h)[:, None]
    r = np.cos(2 * np.pi * np.arange(w) / w)[None, :]
    denom = 2 * q + 2 * r - 4
    denom[0, 0] = 1.0  # the mean of the smooth part is free: set it to 0
    s_hat = np.fft.fft2(v) / denom
    s_hat[0, 0] = 0.0
    return img - np.real(np.fft.ifft2(s_hat))


def make_photo_texture(rng: np.random.Generator, n: int = TEX_SIZE, contrast: float = 1.0,
                       name: str | None = None) -> np.ndarray:
    """A random tileable texture from a photograph (``name`` or a random one of
    :data:`PHOTOGRAPHS`): (n, n) float32 reflectance in [0.01, 1], like ``make_texture``."""
    if name is None:
        name = PHOTOGRAPHS[int(rng.integers(len(PHOTOGRAPHS)))]
    src = photo_log_reflectance(name)
    h, w = src.shape
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    # The crop is an m x m tile (m = n, n/2 or n/4) repeated to n x n: the largest m whose
    # rotated square fits in the photo at one source pixel per texel or more, so that the
    # texture keeps the photo's finest detail (upsampling would blur it: no natural 1/f).
    fits = {m: min(h, w) / (m * (abs(c) + abs(s))) for m in (n, n // 2, n // 4)}
    m = next((m for m, f in fits.items() if f >= 1.0), n // 4)
    scale = rng.uniform(1.0, min(fits[m], 2.0)) if fits[m] > 1.0 else fits[m]  # source px per texel
    if scale > 1.0:  # shrinking: band-limit first so the resampled texture does not alias
        src = ndimage.gaussian_filter(src, 0.5 * np.sqrt(scale**2 - 1.0), mode="reflect")
    half = 0.5 * m * scale * (abs(c) + abs(s))  # half size of the rotated square's bounding box
    cy = rng.uniform(half, h - half) if h > 2 * half else 0.5 * h
    cx = rng.uniform(half, w - half) if w > 2 * half else 0.5 * w
    flip = -1.0 if rng.random() < 0.5 else 1.0
    k = (np.arange(m) - 0.5 * (m - 1)) * scale
    ky, kx = np.meshgrid(k, k * flip, indexing="ij")
    coords = np.stack([cy + c * ky - s * kx, cx + s * ky + c * kx])
    tile = make_periodic(ndimage.map_coordinates(src, coords, order=3, mode="reflect"))
    log = np.tile(tile, (n // m, n // m))
    # Mean and log contrast in the range of the procedural textures, then the caller's contrast.
    log = (log - log.mean()) / (log.std() + 1e-12)
    log = np.log(rng.uniform(0.3, 0.6)) + contrast * rng.uniform(0.45, 0.75) * log
    return np.clip(np.exp(log), 0.01, 1.0).astype(np.float32)
