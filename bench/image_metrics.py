"""Distance between two images of the same size, for lossy speed-ups (turbo): PSNR in dB and SSIM (Wang et al.
2004, 7×7 uniform window on each channel, the constants of the paper), both on 0-255 RGB arrays. numpy only."""

from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _box(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over each size×size window (valid positions only), by summed-area table."""
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[size:, size:] - s[:-size, size:] - s[size:, :-size] + s[:-size, :-size]) / (size * size)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        mx, my = _box(x, window), _box(y, window)
        vx, vy = _box(x * x, window) - mx**2, _box(y * y, window) - my**2
        cov = _box(x * y, window) - mx * my
        s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        scores.append(float(s.mean()))
    return float(np.mean(scores))
