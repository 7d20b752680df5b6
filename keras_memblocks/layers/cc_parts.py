"""The parts of the Contextual Convolution block that are not the layer.

The CC paper's variants (`VARIANTS`), the block's two formulations
(`CC_FORMULATIONS`), the sampled-pixel indices, the per-channel layers in each
formulation, and the PyTorch memory-layout shim: what
`keras_memblocks.layers.ContextualConvBlock2D` is assembled from.
"""

import dataclasses
import functools

import keras
import numpy as np
from keras import ops

from keras_memblocks.layers import excitation_maps


@dataclasses.dataclass(frozen=True)
class CCVariant:
    """What a CC variant computes (the CC paper's Table 3 and Fig. 4).

    Attributes:
        name: the variant's name.
        num_coefficients: per channel: 4 (a map) or 1 (a scale).
        uses_ch: per-channel hidden layers (CH) on the sampled grid.
        uses_mix: one dense layer over all channels (MIX) emits the
            coefficients; otherwise a per-channel linear head does.
        input_dependent: the coefficients come from the input; otherwise
            they are learned constants.
    """

    name: str
    num_coefficients: int
    uses_ch: bool = False
    uses_mix: bool = False
    input_dependent: bool = True


VARIANTS = {
    v.name: v
    for v in (
        CCVariant("reduced", 4),
        CCVariant("full", 4, uses_ch=True, uses_mix=True),
        CCVariant("full_no_mix", 4, uses_ch=True),
        CCVariant("full_no_ch", 4, uses_mix=True),
        CCVariant("scalar", 1),
        CCVariant("input_independent", 4, input_dependent=False),
        CCVariant("input_independent_scalar", 1, input_dependent=False),
    )
}
VARIANT_NAMES = tuple(VARIANTS)
"""The CC paper's variants, the values of `ContextualConvBlock2D(variant=...)`:
`("reduced", "full", "full_no_mix", "full_no_ch", "scalar", "input_independent",
"input_independent_scalar")` (tests/test_docs.py checks this list)."""


CC_FORMULATIONS = ("auto", "batched_matmul", "multiply_sum")
"""How a CC block computes its small per-channel contractions (the
coefficient head, the CH layers, the bilinear map's basis product), the
values of `ContextualConvBlock2D(formulation=...)`: `("auto",
"batched_matmul", "multiply_sum")`. The numbers are the same either way (up to
float rounding); the speed is not:

- `"batched_matmul"`: the grid laid out channel-major and one batched matmul
  per layer, and one matmul with the basis. Fastest for large batches:
  training, and batched inference in TensorFlow, JAX and ONNX Runtime.
- `"multiply_sum"`: a broadcast multiply and a sum for each, in the input's
  own pixel-major layout, so no transposes. Fastest at batch 1, and the
  form LiteRT wants: its XNNPACK delegate runs a BATCH_MATMUL of C tiny
  products slowly in float32 and does not take BATCH_MATMUL at all in int8
  (each op it does not take splits its graph), but takes MUL and SUM.
- `"auto"` (the default): `"batched_matmul"` while training,
  `"multiply_sum"` at inference, so that every exported file (LiteRT, ONNX,
  a SavedModel, by `keras_memblocks.export.export_model` or by Keras' own
  `model.export`) has the edge form. The cost: batched inference in Keras
  (`evaluate`, `predict`) takes the slower form; `"batched_matmul"` keeps
  the fast one there (measured on the Performance page).
"""


@functools.cache
def _torch_contiguous():
    """A PyTorch autograd function: its input, and its gradient, contiguous."""
    import torch

    class Contiguous(torch.autograd.Function):
        @staticmethod
        def forward(ctx, tensor):
            return tensor.contiguous()

        @staticmethod
        def backward(ctx, gradient):
            return gradient.contiguous()

    return Contiguous.apply


def contiguous_on_torch(x):
    """`x`, and its gradient, in contiguous memory on PyTorch; `x` elsewhere.

    PyTorch's CPU `bmm` runs an operand whose batch axis has stride 1 (a
    transposed view, as the channel-major grid and the gradient coming back
    through the head's transpose are) as one small matmul per channel
    (the Performance page has the counts); a contiguous copy forward, and a
    contiguous gradient backward, make each one `bmm`.
    """
    if keras.backend.backend() != "torch":
        return x
    return _torch_contiguous()(x)


def grid_indices(length, grid_size):
    """Sampled positions along an axis whose length was unknown at build time.

    Always `grid_size` positions, floor((i + 0.5) * length / grid_size), so
    the weights do not depend on the length: the same as `nearest_indices`
    for an axis at least as long as the grid; a shorter axis repeats pixels
    (nearest-neighbour upsampling to the grid). `length` is an int (NumPy
    indices) or a scalar tensor (the size known only when the graph runs).
    """
    if isinstance(length, (int, np.integer)):
        i = np.arange(grid_size, dtype="int64")
        return ((2 * i + 1) * int(length) // (2 * grid_size)).astype("int32")
    i = ops.arange(grid_size, dtype="int32")
    return ((2 * i + 1) * ops.cast(length, "int32")) // (2 * grid_size)


def nearest_indices(length, grid_size):
    """Source indices of a nearest-neighbour resize of `length` to `grid_size`.

    Half-pixel centres, the convention of `tf.image.resize(method="nearest")`:
    output i samples floor((i + 0.5) * length / grid_size). An axis already
    no longer than the grid is kept whole. Computed once in integers, so the
    same pixels are sampled by TF, TFLite, ONNX and JAX (their resize ops
    disagree on rounding).
    """
    if length <= grid_size:
        return np.arange(length, dtype="int32")
    i = np.arange(grid_size, dtype="int64")
    return ((2 * i + 1) * length // (2 * grid_size)).astype("int32")


def per_channel_dense(features, kernel, bias):
    """Per-channel layers as one batched matmul: (C, B, n) @ (C, n, m) -> (C, B, m)."""
    out = contiguous_on_torch(ops.matmul(features, kernel))
    return out if bias is None else out + bias


def per_channel_multiply_sum(features, kernel, bias):
    """Per-channel layers as a multiply and a sum, pixel-major:
    (B, n, 1, C) * (n, m, C), summed over n -> (B, m, C).

    The weight transposes depend on nothing else, so converters fold them. The
    sum is taken as the mean of products with an n times larger kernel
    (`excitation_maps.sum_as_mean`): LiteRT's reference int8 SUM is wrong.
    """
    fan_in, units = kernel.shape[1], kernel.shape[2]
    channels = kernel.shape[0]
    out = excitation_maps.sum_as_mean(
        ops.reshape(features, (-1, fan_in, 1, channels)), ops.transpose(kernel, (1, 2, 0)), 1
    )
    return out if bias is None else out + ops.reshape(ops.transpose(bias), (1, units, channels))
