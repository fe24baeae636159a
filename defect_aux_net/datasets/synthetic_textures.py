"""Defect-free surface textures for the synthetic defect dataset.

Every texture is made by spectral synthesis: white noise filtered in the Fourier
domain by an envelope that sets its grain, direction and periodicity. One FFT of
the image size costs well under a millisecond, which keeps a 1,000-image build
in seconds.
"""

import numpy as np

TEXTURE_NAMES = ("noise", "brushed_metal", "fabric")


def _frequency_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns the `rfft2` frequency coordinates (cycles per pixel), broadcastable."""
    return np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]


def filtered_noise(
    rng: np.random.Generator, height: int, width: int, envelope: np.ndarray
) -> np.ndarray:
    """Returns white noise shaped by a Fourier `envelope`, normalised to mean 0, std 1."""
    spectrum = np.fft.rfft2(rng.standard_normal((height, width))) * envelope
    field = np.fft.irfft2(spectrum, s=(height, width))
    return (field - field.mean()) / (field.std() + 1e-8)


def smooth_noise(
    rng: np.random.Generator, height: int, width: int, cutoff: float
) -> np.ndarray:
    """Returns isotropic noise without detail finer than about `1 / cutoff` pixels."""
    fy, fx = _frequency_grid(height, width)
    envelope = np.exp(-(fy**2 + fx**2) / (2 * cutoff**2))
    return filtered_noise(rng, height, width, envelope)


def _noise_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Cloudy, multi-scale grain: a 1/f^beta spectrum, as on cast or sand-blasted parts."""
    fy, fx = _frequency_grid(height, width)
    radius = np.sqrt(fy**2 + fx**2)
    beta = rng.uniform(0.6, 1.4)
    return filtered_noise(rng, height, width, 1.0 / (radius + 0.02) ** beta)


def _brushed_metal_texture(
    rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """Long parallel streaks in a random direction, plus fine isotropic grain.

    The streaks are long and thin, so they look like scratches to an untrained
    eye: one of the things a model has to learn to ignore.
    """
    fy, fx = _frequency_grid(height, width)
    angle = rng.uniform(0, np.pi)
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    streak_envelope = np.exp(
        -((along / rng.uniform(0.004, 0.015)) ** 2) - (across / rng.uniform(0.15, 0.4)) ** 2
    )
    streaks = filtered_noise(rng, height, width, streak_envelope)
    grain = rng.standard_normal((height, width))
    return streaks + rng.uniform(0.2, 0.5) * grain


def _fabric_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A woven grid of two crossing thread directions, slightly warped, plus grain."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4.0, 9.0)
    warp = 1.5 * smooth_noise(rng, height, width, cutoff=0.02)
    along = (cols * np.cos(angle) + rows * np.sin(angle) + warp) * 2 * np.pi / period
    across = (-cols * np.sin(angle) + rows * np.cos(angle) + warp) * 2 * np.pi / period
    weave = np.sin(along) * np.sin(across) + 0.3 * np.sin(2 * along)
    grain = smooth_noise(rng, height, width, cutoff=0.25)
    return weave + rng.uniform(0.3, 0.7) * grain


_TEXTURE_FUNCTIONS = {
    "noise": _noise_texture,
    "brushed_metal": _brushed_metal_texture,
    "fabric": _fabric_texture,
}


def make_background(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, str]:
    """Returns a random defect-free surface in [0, 1] (float64 `[H, W]`) and its texture name.

    Mean brightness and texture contrast vary image to image; a faint illumination
    gradient is added because real line-scan and area cameras show one.
    """
    texture_name = TEXTURE_NAMES[rng.integers(len(TEXTURE_NAMES))]
    texture = _TEXTURE_FUNCTIONS[texture_name](rng, height, width)
    texture = (texture - texture.mean()) / (texture.std() + 1e-8)
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    gradient_angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(gradient_angle) * cols + np.sin(gradient_angle) * rows
    surface = (
        rng.uniform(0.35, 0.65)
        + rng.uniform(0.04, 0.09) * texture
        + rng.uniform(-0.08, 0.08) * (gradient - gradient.mean())
    )
    return surface, texture_name
