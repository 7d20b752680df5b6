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


def _positions(length, dtype):
    """`positions` as a (length, 1) tensor; `length` may be a scalar tensor
    (a map whose size is known only when the graph runs)."""
    if isinstance(length, (int, np.integer)):
        return ops.convert_to_tensor(positions(length)[:, None], dtype)
    length = ops.cast(length, dtype)
    return ops.expand_dims(ops.arange(0, length, dtype=dtype) / length, 1)


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
"""The excitation map profiles, the values of `ContextualConvBlock2D(emp=...)`:
`("bilinear", "gaussian", "sine")` (tests/test_docs.py checks this list)."""

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


def sum_as_mean(values, constant, axis):
    """`sum(values * constant, axis)`, computed as the mean of `values` times
    `constant` scaled by the axis length.

    The same number in float (up to rounding). In an int8 TFLite file it is
    a MUL and a MEAN where a plain sum gives a SUM, and LiteRT's reference
    int8 SUM kernel (`OpResolverType.BUILTIN_REF`, what a port to a new CPU
    starts from) is wrong: a sum of 121 values came out 13 off with values
    up to 12, where its MEAN and the optimized kernels are exact to the
    quantization step (`tests/test_edge_runtimes.py`). `constant` must not
    depend on the input, so that converters fold the scaling into it.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers.excitation_maps import sum_as_mean
        >>> x = np.arange(6, dtype="float32").reshape(2, 3)
        >>> np.asarray(sum_as_mean(x, np.ones((1, 3), "float32"), -1)).tolist()
        [3.0, 12.0]
    """
    length = values.shape[axis]
    if length is None:
        raise ValueError(f"sum_as_mean needs a static length on axis {axis}: {values.shape}.")
    return ops.mean(values * (constant * float(length)), axis=axis)


def with_unit_axis(x, axis):
    """`ops.expand_dims(x, axis)`, as a reshape where at most one dimension
    is unknown (the batch).

    LiteRT's XNNPACK delegate does not take an EXPAND_DIMS of a
    dynamic-batch tensor, and each op it does not take splits the delegated
    graph in two; a RESHAPE to a constant shape it takes.
    """
    shape = list(x.shape)
    axis = axis % (len(shape) + 1)
    shape.insert(axis, 1)
    if sum(d is None for d in shape) > 1:
        return ops.expand_dims(x, axis)
    return ops.reshape(x, [-1 if d is None else d for d in shape])


def in_layout(rows, columns, channels_last=True):
    """`factors`' (..., H, C) and (..., W, C) profiles, broadcastable to a
    (..., H, W, C) map, or to (..., C, H, W) with `channels_last=False`."""
    if channels_last:
        return with_unit_axis(rows, -2), with_unit_axis(columns, -3)
    rows = with_unit_axis(ops.swapaxes(rows, -1, -2), -1)  # (..., C, H, 1)
    columns = with_unit_axis(ops.swapaxes(columns, -1, -2), -2)  # (..., C, 1, W)
    return rows, columns


def factors(name, coefficients, height, width, differentiable=True, multiply_sum=False):
    """The map's row and column profiles.

    Args:
        name: EMP name, one of `EMP_NAMES`.
        coefficients: shape (..., 4, C), the 4 coefficients of every channel
            in the order of the module docstring (width pair first).
        height: the map's height: an int, or a scalar tensor when it is
            known only when the graph runs.
        width: the map's width, likewise.
        differentiable: pick the formulation that is fastest to
            differentiate (training) rather than to evaluate (inference).
            The numbers are the same either way.
        multiply_sum: evaluate the bilinear basis product as a broadcast
            multiply and a sum rather than a matmul (fastest in TFLite; see
            `keras_memblocks.layers.CC_FORMULATIONS`).

    Returns:
        `(rows, columns)` of shapes (..., H, C) and (..., W, C); the map is
        `rows[..., :, None, :] * columns[..., None, :, :]`.
    """
    static = all(isinstance(n, (int, np.integer)) for n in (height, width))
    if name == "bilinear" and not differentiable and static:
        # One matmul with a constant basis. Under XLA it materialises the
        # small profiles instead of recomputing the ramps for every pixel
        # inside the fused multiply: 1.6x faster inference (measured), but
        # 1.8x slower to differentiate, hence not used for training.
        basis = bilinear_basis(height, width)
        if multiply_sum:  # (..., 1, 4, C) * (W + H, 4, 1), summed over the 4
            basis = ops.convert_to_tensor(basis[:, :, None], dtype=coefficients.dtype)
            both = sum_as_mean(with_unit_axis(coefficients, -3), basis, -2)
        else:
            basis = ops.convert_to_tensor(basis, dtype=coefficients.dtype)
            both = ops.matmul(basis, coefficients)  # (..., W + H, C)
        return both[..., width:, :], both[..., :width, :]
    profile = _PROFILES[name]
    u = _positions(width, coefficients.dtype)
    v = _positions(height, coefficients.dtype)
    columns = profile(coefficients[..., 0:1, :], coefficients[..., 1:2, :], u)
    rows = profile(coefficients[..., 2:3, :], coefficients[..., 3:4, :], v)
    return rows, columns


def bilinear_moments_basis(height, width):
    """(H * W, 4) matrix of the bilinear map's four pixel weights.

    Column 2i + j holds P_i(y) * Q_j(x), with P = (1 - y/H, y/H) and
    Q = (1 - x/W, x/W): contracting a (H * W) image with it gives the four
    bilinear moments from which all four coefficient gradients follow.
    """
    u, v = positions(width), positions(height)
    rows = np.stack([1.0 - v, v], axis=1)  # (H, 2)
    columns = np.stack([1.0 - u, u], axis=1)  # (W, 2)
    return np.einsum("hi,wj->hwij", rows, columns).reshape(height * width, 4)


class BilinearExcitation:
    """`inputs * S` for the bilinear map S, with a closed-form gradient.

    Called as `excitation(inputs, coefficients)` with inputs (B, H, W, C)
    (or (B, C, H, W) when `channels_last=False`) and coefficients (B, 4, C)
    float32, `{a_w, b_w, a_h, b_h}` per channel. For training: the value is
    the one `factors` gives, only the backward differs.

    Autodiff of `x * rows * columns` keeps full-size intermediates and
    spends five element-wise passes going back through them. S is linear
    in each coefficient pair, so the backward needs only `g * S` for the
    input (S is built once in the forward and kept, at the memory of one
    more feature map) and the four bilinear moments m_ij of `g * x` (one
    matmul with a constant basis) for the coefficients: da_w = a_h m00 + b_h m10,
    db_w = a_h m01 + b_h m11, da_h = a_w m00 + b_w m01,
    db_h = a_w m10 + b_w m11. Measured in benchmarks/block_overhead.py.
    """

    def __init__(self, height, width, channels, channels_last=True):
        self.height, self.width, self.channels = height, width, channels
        self.channels_last = channels_last
        self._moments_basis = bilinear_moments_basis(height, width)

    def profiles(self, coefficients, dtype):
        """Row and column factors, broadcastable to the input's layout."""
        rows, columns = factors(
            "bilinear", coefficients, self.height, self.width, differentiable=False
        )
        rows, columns = in_layout(rows, columns, self.channels_last)
        return ops.cast(rows, dtype), ops.cast(columns, dtype)

    def moments(self, weighted):
        """The four bilinear moments of a feature map, (B, 4, C) float32."""
        pixels = self.height * self.width
        basis = ops.convert_to_tensor(self._moments_basis, dtype=weighted.dtype)
        if self.channels_last:  # (4, H*W) @ (B, H*W, C)
            flat = ops.reshape(weighted, (-1, pixels, self.channels))
            moments = ops.matmul(ops.transpose(basis), flat)
        else:  # (B, C, H*W) @ (H*W, 4)
            flat = ops.reshape(weighted, (-1, self.channels, pixels))
            moments = ops.swapaxes(ops.matmul(flat, basis), 1, 2)
        return ops.cast(moments, "float32")

    def coefficient_gradient(self, inputs, coefficients, upstream):
        """The loss's gradient for the coefficients, (B, 4, C) float32, from
        the four bilinear moments of `upstream * inputs`."""
        m00, m01, m10, m11 = ops.unstack(self.moments(upstream * inputs), axis=1)
        a_w, b_w, a_h, b_h = ops.unstack(coefficients, axis=1)
        return ops.stack(
            [
                a_h * m00 + b_h * m10,
                a_h * m01 + b_h * m11,
                a_w * m00 + b_w * m01,
                a_w * m10 + b_w * m11,
            ],
            axis=1,
        )

    def __call__(self, inputs, coefficients):
        @ops.custom_gradient
        def excite(inputs, coefficients):
            rows, columns = self.profiles(coefficients, inputs.dtype)
            # The whole map, built once from the small factors and kept: the
            # input gradient is then one multiply instead of two broadcast
            # multiplies (benchmarks/block_overhead.py: it pays under XLA
            # and on JAX; in TensorFlow's graph mode it is within noise).
            excitation = rows * columns

            def grad(*args, upstream=None):
                if upstream is None:  # TensorFlow and JAX pass it positionally
                    (upstream,) = args
                return (
                    upstream * excitation,
                    self.coefficient_gradient(inputs, coefficients, upstream),
                )

            return inputs * excitation, grad

        return excite(inputs, coefficients)
