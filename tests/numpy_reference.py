"""Independent NumPy re-implementations of both blocks, channels_last.

Written from the spec's formulas (per pixel, float64), sharing no code with
the package: the layers are tested against these, never against themselves.
Weights are passed as a dict keyed by the layers' variable names.
"""

import numpy as np


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    None: lambda v: v,
    "linear": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
}


def squeeze_and_remember(x, weights, hidden_activation=None, use_bias=True):
    """SR block: returns (output, memory_weights)."""
    x = x.astype("float64")
    batch, height, width, channels = x.shape
    # 1x1 conv C -> 1 (no bias), flatten to (B, H*W).
    squeezed = np.zeros((batch, height, width))
    for c in range(channels):
        squeezed += x[..., c] * weights["squeeze_kernel"][c]
    squeezed = squeezed.reshape(batch, height * width)
    hidden = squeezed @ weights["hidden_kernel"]
    if use_bias:
        hidden = hidden + weights["hidden_bias"]
    hidden = ACTIVATIONS[hidden_activation](hidden)
    logits = hidden @ weights["logits_kernel"]
    if use_bias:
        logits = logits + weights["logits_bias"]
    memory_weights = softmax(logits)  # (B, P)
    memory = weights["memory"].astype("float64")  # (P, H, W, C)
    recalled = np.zeros_like(x)
    for i in range(memory.shape[0]):
        recalled += memory_weights[:, i, None, None, None] * memory[i][None]
    return x + recalled, memory_weights


def nearest_downsample(x, grid_size, any_size=False):
    """(B, H, W, C) -> (B, g_h, g_w, C), g = min(grid, side), half-pixel
    nearest sampling: output i reads floor((i + 0.5) * side / g).

    `any_size=True` is the rule of a block built for any size: g = grid on
    every axis, a shorter side repeating its pixels."""
    _, height, width, _ = x.shape
    g_h, g_w = min(grid_size, height), min(grid_size, width)
    if any_size:
        g_h = g_w = grid_size
    rows = [int(np.floor((i + 0.5) * height / g_h)) for i in range(g_h)]
    cols = [int(np.floor((j + 0.5) * width / g_w)) for j in range(g_w)]
    return x[:, rows][:, :, cols]


def cc_coefficients(
    x, weights, variant, grid_size=11, ch_activation="relu", use_bias=True, any_size=False
):
    """(B, C, K) coefficients of the CC block, after tanh(p)/2 + 1 for the
    input-dependent variants."""
    x = x.astype("float64")
    batch, _, _, channels = x.shape
    if variant == "input_independent":
        return np.broadcast_to(weights["coefficients"].T, (batch, channels, 4))
    if variant == "input_independent_scalar":
        return np.broadcast_to(weights["scale"][:, None], (batch, channels, 1))

    grid = nearest_downsample(x, grid_size, any_size)  # (B, g_h, g_w, C)
    # Each channel's grid, row-major: (B, C, g_h*g_w).
    per_channel = np.stack([grid[..., c].reshape(batch, -1) for c in range(channels)], axis=1)
    act = ACTIVATIONS[ch_activation]

    def dense_per_channel(features, name):
        kernel = weights[f"{name}_kernel"]  # (C, n, m)
        out = np.stack([features[:, c] @ kernel[c] for c in range(channels)], 1)
        if use_bias:
            out = out + weights[f"{name}_bias"][:, 0][None]
        return out

    features = per_channel
    if variant in ("full", "full_no_mix"):
        i = 0
        while f"ch_{i}_kernel" in weights:
            features = act(dense_per_channel(features, f"ch_{i}"))
            i += 1
    if variant in ("full", "full_no_ch"):
        # MIX: inputs ordered (channel, feature); outputs ordered (k, channel).
        flat = features.reshape(batch, -1)
        raw = flat @ weights["mix_kernel"]
        if use_bias:
            raw = raw + weights["mix_bias"]
        raw = raw.reshape(batch, 4, channels).transpose(0, 2, 1)
    else:
        raw = dense_per_channel(features, "coefficient")  # (B, C, K)
    return np.tanh(raw) / 2.0 + 1.0


def excitation_map(coefficients, height, width, emp):
    """(B, H, W, C) map from (B, C, K) coefficients, pixel by pixel."""
    batch, channels, k = coefficients.shape
    if k == 1:
        return np.broadcast_to(
            coefficients[:, None, None, :, 0], (batch, height, width, channels)
        ).copy()
    out = np.zeros((batch, height, width, channels))
    p = coefficients
    for y in range(height):
        for x in range(width):
            if emp == "bilinear":
                fw = p[..., 0] * (width - x) / width + p[..., 1] * x / width
                fh = p[..., 2] * (height - y) / height + p[..., 3] * y / height
            elif emp == "gaussian":
                fw = np.exp(-((x / width - p[..., 0]) ** 2) / (2 * p[..., 1] ** 2 + 1e-6)) + 0.5
                fh = np.exp(-((y / height - p[..., 2]) ** 2) / (2 * p[..., 3] ** 2 + 1e-6)) + 0.5
            elif emp == "sine":
                fw = np.sin(p[..., 0] * x / width + p[..., 1]) / 2 + 1
                fh = np.sin(p[..., 2] * y / height + p[..., 3]) / 2 + 1
            else:
                raise ValueError(emp)
            out[:, y, x, :] = fw * fh
    return out


def contextual_conv(
    x,
    weights,
    variant,
    emp="bilinear",
    grid_size=11,
    ch_activation="relu",
    use_bias=True,
    any_size=False,
):
    """CC block: returns (output, map, coefficients)."""
    coefficients = cc_coefficients(
        x, weights, variant, grid_size, ch_activation, use_bias, any_size
    )
    _, height, width, _ = x.shape
    excitation = excitation_map(coefficients, height, width, emp)
    return excitation * x.astype("float64"), excitation, coefficients


def sr_parameter_count(height, width, channels, units, memories, use_bias):
    """The paper's eq. 1 (+ FC biases)."""
    count = (
        channels + height * width * units + units * memories + memories * channels * height * width
    )
    return count + (units + memories if use_bias else 0)


def cc_parameter_count(
    variant, height, width, channels, grid_size=11, ch_units=(16, 4), use_bias=True
):
    pixels = min(grid_size, height) * min(grid_size, width)
    b = 1 if use_bias else 0
    if variant == "input_independent":
        return 4 * channels
    if variant == "input_independent_scalar":
        return channels
    if variant in ("reduced", "scalar"):
        k = 4 if variant == "reduced" else 1
        return channels * (pixels * k + b * k)
    count, fan_in = 0, pixels
    if variant in ("full", "full_no_mix"):
        for units in ch_units:
            count += channels * (fan_in * units + b * units)
            fan_in = units
    if variant == "full_no_mix":
        return count + channels * (fan_in * 4 + b * 4)
    return count + channels * fan_in * 4 * channels + b * 4 * channels
