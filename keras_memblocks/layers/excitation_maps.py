"""Excitation map producers (EMPs) of the Contextual Convolution block.

Each EMP turns 4 coefficients per channel into a smooth (H, W) map. All
three of the paper's EMPs are products of a function of the column `x` and
a function of the row `y`:

    bilinear {a_w, b_w, a_h, b_h}:
        (a_w*(W-x)/W + b_w*x/W) * (a_h*(H-y)/H + b_h*y/H)
    gaussian {mu_w, sigma_w, mu_h, sigma_h}:
        (G(x/W; mu_w, sigma_w) + 0.5) * (G(y/H; mu_h, sigma_h) + 0.5)
    sine {nu_w, phi_w, nu_h, phi_h}:
        (sin(nu_w*x/W + phi_w)/2 + 1) * (sin(nu_h*y/H + phi_h)/2 + 1)

with x = 0..W-1, y = 0..H-1 and G(u; mu, sigma) = exp(-(u-mu)^2 / (2 sigma^2))
(peak 1). The Gaussian and sine maps take the normalised position x/W, like
the bilinear ramp, so one set of coefficients means the same map at every
resolution.

The block therefore never materialises an (H, W, C) parameter tensor: it
builds one profile along each axis, shape (B, length, C), and the map is
their outer product. `profile(name, pair, length)` returns one of them.
"""

import numpy as np
from keras import ops

# Keeps the Gaussian finite when a learned sigma reaches 0.
_GAUSSIAN_EPSILON = 1e-6


def positions(length):
    """Normalised pixel positions x / length for x = 0..length-1 (NumPy)."""
    return np.arange(length, dtype="float32") / np.float32(length)


def _bilinear(first, second, position):
    return first * (1.0 - position) + second * position


def _gaussian(mean, sigma, position):
    squared_distance = ops.square(position - mean)
    return ops.exp(-squared_distance / (2.0 * ops.square(sigma) + _GAUSSIAN_EPSILON)) + 0.5


def _sine(frequency, phase, position):
    return ops.sin(frequency * position + phase) / 2.0 + 1.0


_PROFILES = {"bilinear": _bilinear, "gaussian": _gaussian, "sine": _sine}

EMP_NAMES = tuple(_PROFILES)

# Coefficients that make an input-independent map start flat (or as flat as
# the EMP allows): bilinear and sine give exactly 1; the Gaussian cannot be
# constant, so it starts centred and broad.
INITIAL_COEFFICIENTS = {
    "bilinear": (1.0, 1.0, 1.0, 1.0),
    "gaussian": (0.5, 1.0, 0.5, 1.0),
    "sine": (0.0, 0.0, 0.0, 0.0),
}


def profile(name, pair, length):
    """One axis' factor of the map.

    Args:
        name: EMP name, one of `EMP_NAMES`.
        pair: the two coefficients of this axis, shape (..., C, 2).
        length: the axis' length (W for the columns, H for the rows).

    Returns:
        Tensor of shape (..., length, C): the profile at each position.
    """
    position = ops.convert_to_tensor(positions(length), dtype=pair.dtype)
    position = ops.reshape(position, (length, 1))  # (L, 1)
    first = ops.expand_dims(pair[..., 0], axis=-2)  # (..., 1, C)
    second = ops.expand_dims(pair[..., 1], axis=-2)  # (..., 1, C)
    return _PROFILES[name](first, second, position)  # (..., L, C)
