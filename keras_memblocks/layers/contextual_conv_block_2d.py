"""The Contextual Convolution (CC) block."""

import keras
import numpy as np
from keras import ops

from keras_memblocks.layers import excitation_maps
from keras_memblocks.layers.cc_parts import CC_FORMULATIONS
from keras_memblocks.layers.cc_parts import VARIANT_NAMES
from keras_memblocks.layers.cc_parts import VARIANTS
from keras_memblocks.layers.cc_parts import contiguous_on_torch
from keras_memblocks.layers.cc_parts import grid_indices
from keras_memblocks.layers.cc_parts import nearest_indices
from keras_memblocks.layers.cc_parts import per_channel_dense
from keras_memblocks.layers.cc_parts import per_channel_multiply_sum
from keras_memblocks.utils import argument_checks
from keras_memblocks.utils.initializers import fan_in_uniform


@keras.saving.register_keras_serializable(package="keras_memblocks")
class ContextualConvBlock2D(keras.layers.Layer):
    """Contextual Convolution block: a spatial Squeeze-and-Excitation.

    Every channel of the input `X` is multiplied by a smooth excitation map
    `S` built from a few coefficients per channel, so a filter can matter
    more in one region of the image than in another:
    `CC(X) = S(X) * X` with `S = EMP(MIX(CH(downsample(X))))`.

    Each channel is first resized to `grid_size x grid_size` by
    nearest-neighbour sampling (an axis shorter than the grid is kept).
    The variant decides how the coefficients are produced:

    - `"reduced"` (default, best in the paper): per-channel linear map of the
      downsampled channel to its 4 coefficients (`grid^2 * 4 + 4` weights
      per channel).
    - `"full"`: CH (per-channel hidden FC layers, `ch_units`) then MIX (one
      FC layer over all channels, emitting 4 coefficients per channel).
    - `"full_no_mix"`: CH, then a per-channel linear head to 4 coefficients.
    - `"full_no_ch"`: MIX directly on all downsampled channels.
    - `"scalar"`: like `"reduced"` with one coefficient per channel, used as
      a plain channel scale (SE-like, no spatial selectivity).
    - `"input_independent"`: 4 learned constants per channel; `S` does not
      depend on the input ("a spatially dependent bias").
    - `"input_independent_scalar"`: a learned constant scale per channel.

    Input-dependent coefficients `p` pass through `tanh(p)/2 + 1`, so they
    lie in [0.5, 1.5], centred on 1 (pass-through). The EMP (`"bilinear"`,
    `"gaussian"` or `"sine"`, see `keras_memblocks.layers.excitation_maps`)
    turns the 4 coefficients of a channel into its (H, W) map. Every EMP is
    the outer product of a row profile and a column profile, so the block
    stores no (H, W, C) tensor and its cost is a few element-wise passes.

    Args:
        variant: one of the variant names above.
        emp: excitation map producer, `"bilinear"` (default), `"gaussian"` or
            `"sine"`. Scalar variants have no map; they accept only the
            default.
        grid_size: int >= 1, side of the downsampled grid (paper: 11).
        ch_units: hidden sizes of the per-channel CH layers of the `"full"`
            and `"full_no_mix"` variants (the paper uses two layers and does
            not publish sizes). Default `(16, 4)`.
        ch_activation: activation of the CH layers. Default `"relu"`.
        use_bias: whether the coefficient layers have biases.
        coefficient_initializer: initialiser of the last layer producing
            the raw coefficients. The default `"zeros"` makes every
            input-dependent variant start as the identity (S = 1), so blocks
            inserted into a trained network leave its outputs unchanged.
            Input-independent variants start from the EMP's flat
            coefficients (exactly 1 for bilinear and sine).
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        formulation: how the small per-channel contractions are computed:
            `"auto"` (default: batched matmuls while training, a multiply and
            a sum at inference, the form every exported file gets),
            `"batched_matmul"` or `"multiply_sum"` (that form always). The
            outputs are the same; see `CC_FORMULATIONS` for the speeds.
        **kwargs: standard `keras.layers.Layer` arguments.

    Any size: a block built on an input of unknown height and width (e.g.
    `keras.Input((None, None, 64))`) samples each axis at `grid_size`
    positions computed from the size of each call, and its maps use
    normalised positions, so the same weights serve every size: train at
    224 and run at 320, or run a segmentation net on full frames. Its
    weights are those of a block built for a fixed size of at least
    `grid_size` on both sides. A side shorter than the grid repeats pixels
    (nearest-neighbour upsampling to the grid); a block built for a fixed
    shorter side keeps that side whole instead, as in the paper. Graphs
    traced for a fixed size (the usual export) still sample with constant
    indices.

    Call arguments:
        inputs: a 4-D feature map with known channels; height and width
            may be unknown when the block is built (see "Any size").

    Input shape:
        `(batch, H, W, C)` for `"channels_last"`, `(batch, C, H, W)` for
        `"channels_first"`.

    Output shape:
        Same as the input.

    Reference:
        Marwood, Baluja. "Contextual Convolution Blocks". BMVC 2021.

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.layers import ContextualConvBlock2D
        >>> block = ContextualConvBlock2D("reduced")
        >>> x = np.random.rand(2, 32, 32, 16).astype("float32")
        >>> tuple(block(x).shape)
        (2, 32, 32, 16)
        >>> block.count_params()  # per channel: 11*11*4 weights + 4 biases
        7808
        >>> tuple(block.compute_coefficients(x).shape)  # (B, C, 4)
        (2, 16, 4)
    """

    def __init__(
        self,
        variant="reduced",
        emp="bilinear",
        grid_size=11,
        ch_units=(16, 4),
        ch_activation="relu",
        use_bias=True,
        coefficient_initializer="zeros",
        data_format=None,
        formulation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.variant = argument_checks.check_choice("variant", variant, VARIANT_NAMES)
        self.emp = argument_checks.check_choice("emp", emp, excitation_maps.EMP_NAMES)
        self.spec = VARIANTS[variant]
        self.num_coefficients = self.spec.num_coefficients
        self.input_dependent = self.spec.input_dependent
        if self.num_coefficients == 1 and emp != "bilinear":
            raise ValueError(
                f"variant={variant!r} scales each channel by one number and "
                f"has no excitation map, so `emp` must keep its default "
                f"'bilinear'. Received: emp={emp!r}. Use a 4-coefficient "
                f"variant ({', '.join(n for n, v in VARIANTS.items() if v.num_coefficients == 4)}) "
                "for another EMP."
            )
        self.grid_size = argument_checks.check_positive_int("grid_size", grid_size)
        if isinstance(ch_units, int):
            ch_units = (ch_units,)
        ch_units = tuple(ch_units)
        if not ch_units:
            raise ValueError(
                f"`ch_units` must name at least one hidden size. Received: ch_units={ch_units!r}"
            )
        for units in ch_units:
            argument_checks.check_positive_int("ch_units", units)
        self.ch_units = ch_units
        self._ch_activation_fn, self.ch_activation = argument_checks.resolve_activation(
            ch_activation
        )
        self.use_bias = bool(use_bias)
        self.coefficient_initializer = keras.initializers.get(coefficient_initializer)
        self.data_format = argument_checks.standardize_data_format(data_format)
        self.formulation = argument_checks.check_choice("formulation", formulation, CC_FORMULATIONS)

    # === Weights ===

    def _weight(self, name, shape, initializer):
        # The coefficient path is tiny and feeds a tanh: keep it in float32
        # under mixed precision.
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            dtype="float32",
            autocast=False,
        )

    def build(self, input_shape):
        height, width, channels = argument_checks.feature_map_dims(
            self.__class__.__name__, input_shape, self.data_format
        )
        self._dims = (height, width, channels)
        self._dynamic_size = height is None or width is None
        self._bilinear_excitation = None
        self._grid_pixels = None
        if self._dynamic_size:
            # Any size: every axis is sampled at `grid_size` positions
            # computed from the size the call sees (`grid_indices`).
            grid_pixels = self.grid_size**2
        else:
            row_indices = nearest_indices(height, self.grid_size)
            column_indices = nearest_indices(width, self.grid_size)
            # Flat (row-major) positions of the sampled pixels.
            self._grid_pixels = (row_indices[:, None] * width + column_indices[None, :]).reshape(-1)
            grid_pixels = self._grid_pixels.shape[0]
            self._bilinear_excitation = self._closed_form_excitation(height, width)
        self._grid_count = grid_pixels
        num_coefficients = self.num_coefficients
        # Every weight attribute exists; those a variant does not use are None.
        self.scale = self.coefficients = None  # input-independent variants
        self.ch_layers = []  # [(kernel, bias)], the CH layers
        self.mix_kernel = self.mix_bias = None  # the MIX layer
        self.head_kernel = self.head_bias = None  # the per-channel coefficient head

        if not self.input_dependent:
            if num_coefficients == 1:
                self.scale = self._weight("scale", (channels,), "ones")
            else:
                initial = excitation_maps.INITIAL_COEFFICIENTS[self.emp]
                self.coefficients = self._weight(
                    "coefficients",
                    (num_coefficients, channels),
                    keras.initializers.Constant(
                        np.tile(np.float32(initial)[:, None], (1, channels))
                    ),
                )
            return

        # Per-channel layers hold a (C, fan_in, units) kernel and a (C, 1,
        # units) bias: with features laid out channel-major, (C, B, fan_in),
        # each such layer is one batched matmul (faster on CPU than a
        # grid-sized depthwise convolution, and lowered to BatchMatMul by
        # every converter).
        def per_channel(name, fan_in, units, initializer):
            kernel = self._weight(f"{name}_kernel", (channels, fan_in, units), initializer)
            bias = None
            if self.use_bias:
                bias = self._weight(f"{name}_bias", (channels, 1, units), "zeros")
            return kernel, bias

        fan_in = grid_pixels
        if self.spec.uses_ch:
            for i, units in enumerate(self.ch_units):
                self.ch_layers.append(per_channel(f"ch_{i}", fan_in, units, fan_in_uniform(fan_in)))
                fan_in = units
        if self.spec.uses_mix:
            # One dense layer over every channel's features, flattened in
            # (channel, feature) order; its outputs are ordered (k, channel).
            self.mix_kernel = self._weight(
                "mix_kernel",
                (channels * fan_in, channels * num_coefficients),
                self.coefficient_initializer,
            )
            if self.use_bias:
                self.mix_bias = self._weight("mix_bias", (channels * num_coefficients,), "zeros")
        else:
            # reduced / scalar / full_no_mix: a per-channel linear map to the
            # coefficients (reduced: grid^2 * K weights + K biases a channel).
            self.head_kernel, self.head_bias = per_channel(
                "coefficient",
                fan_in,
                num_coefficients,
                self.coefficient_initializer,
            )

    # === Coefficients ===

    def _closed_form_excitation(self, height, width):
        """Training an input-dependent bilinear map: a closed-form backward
        (`excitation_maps.BilinearExcitation`), for a known map size."""
        if not (self.input_dependent and self.num_coefficients == 4 and self.emp == "bilinear"):
            return None
        return excitation_maps.BilinearExcitation(
            height, width, self._dims[2], channels_last=self.data_format == "channels_last"
        )

    def _map_size(self, inputs):
        """(height, width) of a call: ints where the shape is known while
        tracing, scalar tensors where it is known only when the graph runs."""
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        static = [inputs.shape[axis] for axis in axes]
        if None in static:
            dynamic = ops.shape(inputs)
            return tuple(d if d is not None else dynamic[a] for d, a in zip(static, axes))
        return tuple(static)

    def _sampled_pixels(self, height, width):
        """Flat (row-major) positions of the sampled pixels, (g_h * g_w,)."""
        if not self._dynamic_size:
            return self._grid_pixels
        rows = grid_indices(height, self.grid_size)
        columns = grid_indices(width, self.grid_size)
        if isinstance(rows, np.ndarray) and isinstance(columns, np.ndarray):
            return (rows[:, None] * width + columns[None, :]).reshape(-1)
        width = ops.cast(width, "int32")
        return ops.reshape(ops.expand_dims(rows, 1) * width + ops.expand_dims(columns, 0), (-1,))

    def _grid(self, inputs, training=None):
        """Nearest-neighbour grid of every channel, in the input's layout:
        (B, g_h*g_w, C) channels_last, (B, C, g_h*g_w) channels_first."""
        channels = self._dims[2]
        height, width = self._map_size(inputs)
        sampled = self._sampled_pixels(height, width)
        pixels = self._grid_count
        channels_last = self.data_format == "channels_last"
        flat_shape = (-1, pixels, channels) if channels_last else (-1, channels, pixels)
        static_size = isinstance(sampled, np.ndarray)
        if not self._dynamic_size and pixels == height * width:
            # The grid is the whole map (both sides <= grid_size): no copy.
            return ops.reshape(inputs, flat_shape)
        if static_size and not training:
            # Inference: one gather of constant indices along the pixel axis.
            # Exported graphs get a single GATHER with folded indices instead
            # of the batch-dependent index arithmetic below (measured in
            # benchmarks/export_latency.py); its gradient is what makes it
            # slow to train.
            map_shape = (
                (-1, height * width, channels) if channels_last else (-1, channels, height * width)
            )
            return ops.take(ops.reshape(inputs, map_shape), sampled, axis=1 if channels_last else 2)
        return ops.reshape(self._gather_grid(inputs, height, width, sampled), flat_shape)

    def _grid_by_channel(self, inputs, training=None):
        """The grid channel-major, (C, B, g_h*g_w) float32: the layout of
        the per-channel batched matmuls."""
        grid = self._grid(inputs, training)
        grid = ops.transpose(grid, (2, 0, 1) if self.data_format == "channels_last" else (1, 0, 2))
        return contiguous_on_torch(ops.cast(grid, "float32"))

    def _grid_by_pixel(self, inputs, training=None):
        """The grid pixel-major, (B, g_h*g_w, C) float32: the layout of the
        multiply-and-sum per-channel layers."""
        grid = self._grid(inputs, training)
        if self.data_format == "channels_first":
            grid = ops.swapaxes(grid, 1, 2)
        return ops.cast(grid, "float32")

    def _gather_grid(self, inputs, height, width, sampled):
        """The sampled pixels, (B*g_h*g_w, C) or (B*C*g_h*g_w,).

        One gather along axis 0 of the flattened input: each sampled pixel
        (channels_last) or element (channels_first) is a contiguous row, and
        the gradient is a plain scatter-add. Per-axis gathers on axes 1 and
        2 cost TF two full-size transposes in the backward pass (measured
        2x slower for training).
        """
        channels = self._dims[2]
        batch = ops.shape(inputs)[0]
        map_pixels = height * width  # ints, or int32 tensors while tracing
        if self.data_format == "channels_last":
            rows = ops.reshape(inputs, (-1, channels))  # (B*H*W, C)
            row_starts = ops.arange(batch, dtype="int32") * map_pixels
        else:
            rows = ops.reshape(inputs, (-1,))  # (B*C*H*W,)
            row_starts = ops.arange(batch * channels, dtype="int32") * map_pixels
        indices = ops.expand_dims(row_starts, 1) + sampled
        return ops.take(rows, ops.reshape(indices, (-1,)), axis=0)

    def _multiply_sum(self, training):
        """Whether this call takes the "multiply_sum" formulation."""
        if self.formulation == "auto":
            return not training
        return self.formulation == "multiply_sum"

    def _raw_coefficients(self, inputs, training=None):
        """Input-dependent coefficients before tanh, (B, K, C) float32."""
        if self._multiply_sum(training):
            return self._raw_coefficients_pixel_major(inputs, training)
        features = self._grid_by_channel(inputs, training)  # (C, B, g_h*g_w)
        for kernel, bias in self.ch_layers:
            features = self._ch_activation_fn(per_channel_dense(features, kernel, bias))
        if self.spec.uses_mix:
            return self._mixed(ops.transpose(features, (1, 0, 2)))
        raw = per_channel_dense(features, self.head_kernel, self.head_bias)  # (C, B, K)
        return ops.transpose(raw, (1, 2, 0))

    def _raw_coefficients_pixel_major(self, inputs, training=None):
        """`_raw_coefficients` by the "multiply_sum" formulation."""
        features = self._grid_by_pixel(inputs, training)  # (B, g_h*g_w, C)
        for kernel, bias in self.ch_layers:
            features = self._ch_activation_fn(per_channel_multiply_sum(features, kernel, bias))
        if self.spec.uses_mix:
            return self._mixed(ops.swapaxes(features, 1, 2))
        return per_channel_multiply_sum(features, self.head_kernel, self.head_bias)

    def _mixed(self, features):
        """MIX: (B, C, n) features -> (B, K, C) raw coefficients."""
        flat = ops.reshape(features, (-1, self.mix_kernel.shape[0]))  # (channel, feature) order
        raw = ops.matmul(flat, self.mix_kernel)  # (B, K*C), k-major
        if self.mix_bias is not None:
            raw = raw + self.mix_bias
        return ops.reshape(raw, (-1, self.num_coefficients, self._dims[2]))

    def _checked(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if not self.built:
            self.build(inputs.shape)
        argument_checks.check_same_dims(
            self.__class__.__name__, self._dims, inputs.shape, self.data_format
        )
        return inputs

    def _coefficients(self, inputs, training=None):
        """(B, K, C) float32 if input-dependent, else (K, C).

        Channels last: that is the layout the EMP's matmul and the final
        broadcast multiply want, so no transposes run per step.
        """
        if not self.input_dependent:
            if self.num_coefficients == 1:
                return ops.expand_dims(self.scale, 0)
            return self.coefficients
        return ops.tanh(self._raw_coefficients(inputs, training)) / 2.0 + 1.0

    def compute_coefficients(self, inputs):
        """Returns the per-example coefficients, (B, C, K) float32.

        K is 4 (`{a_w, b_w, a_h, b_h}` for the bilinear EMP, `{mu_w,
        sigma_w, mu_h, sigma_h}` Gaussian, `{nu_w, phi_w, nu_h, phi_h}` sine)
        or 1 for the scalar variants. Input-independent coefficients are
        repeated over the batch. This is what the tilt / magnitude analyses
        of the paper read.
        """
        inputs = self._checked(inputs)
        coefficients = self._coefficients(inputs)
        if not self.input_dependent:
            batch = ops.shape(inputs)[0]
            coefficients = ops.broadcast_to(coefficients, (batch, *coefficients.shape))
        return ops.transpose(coefficients, (0, 2, 1))

    # === Excitation ===

    def _factors(self, coefficients, dtype, size, training=None):
        """The map's factors, each broadcastable to the input's layout.

        `coefficients` is (..., K, C); `size` is the map's (height, width).
        Returns `(rows, columns)` for a 4-coefficient map, or `(scale,
        None)` for a scalar variant, with a leading batch axis only for
        input-dependent variants.
        """
        height, width = size
        channels_last = self.data_format == "channels_last"
        if self.num_coefficients == 1:
            if channels_last:  # (..., 1, C) -> (..., 1, 1, C)
                scale = excitation_maps.with_unit_axis(coefficients, -3)
            else:  # (..., 1, C) -> (..., C, 1, 1)
                scale = excitation_maps.with_unit_axis(ops.swapaxes(coefficients, -1, -2), -1)
            return ops.cast(scale, dtype), None
        rows, columns = excitation_maps.factors(
            self.emp,
            coefficients,
            height,
            width,
            differentiable=bool(training) and self.input_dependent,
            multiply_sum=self._multiply_sum(training),
        )  # (..., H, C), (..., W, C)
        rows, columns = excitation_maps.in_layout(rows, columns, channels_last)
        return ops.cast(rows, dtype), ops.cast(columns, dtype)

    def compute_excitation_map(self, inputs):
        """Returns the excitation map S, the same shape as the input.

        `S * inputs` is the block's output. In the input's dtype.
        """
        inputs = self._checked(inputs)
        first, second = self._factors(
            self._coefficients(inputs), inputs.dtype, self._map_size(inputs)
        )
        excitation = first if second is None else first * second
        return ops.broadcast_to(excitation, ops.shape(inputs))

    def call(self, inputs, training=None):
        argument_checks.check_same_dims(
            self.__class__.__name__, self._dims, inputs.shape, self.data_format
        )
        coefficients = self._coefficients(inputs, training)
        size = self._map_size(inputs)
        if training:
            excitation = self._bilinear_excitation
            if self._dynamic_size and all(isinstance(n, int) for n in size):
                excitation = self._closed_form_excitation(*size)
            if excitation is not None:
                return excitation(inputs, coefficients)
        first, second = self._factors(coefficients, inputs.dtype, size, training)
        if second is None:
            return inputs * first
        if not self.input_dependent:
            # A constant (H, W, C) map: build it once, one multiply per step.
            return inputs * (first * second)
        return inputs * first * second

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "emp": self.emp,
                "grid_size": self.grid_size,
                "ch_units": list(self.ch_units),
                "ch_activation": self.ch_activation,
                "use_bias": self.use_bias,
                "coefficient_initializer": keras.initializers.serialize(
                    self.coefficient_initializer
                ),
                "data_format": self.data_format,
                "formulation": self.formulation,
            }
        )
        return config


CCBlock = ContextualConvBlock2D
"""Short name of `ContextualConvBlock2D` (the same class)."""


def cc_blocks(model):
    """Yields every CC block in `model` (itself, its layers, nested models' layers)."""
    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, ContextualConvBlock2D):
            yield layer
        stack.extend(getattr(layer, "layers", []))


def set_cc_formulation(model, formulation):
    """Sets the formulation of every CC block in `model`, nested models included.

    For a model already built (or loaded) whose graphs should take another
    form, e.g. `"batched_matmul"` for fast batched inference in Keras, or the
    model of a file saved before the argument existed. It changes the
    `formulation` argument of each block (saved with the model); graphs traced
    before it keep their form, so call it before `compile`, `predict` or an
    export.

    Returns:
        How many CC blocks it set.

    Examples:
        >>> import keras
        >>> from keras_memblocks.layers import ContextualConvBlock2D, set_cc_formulation
        >>> inputs = keras.Input((16, 16, 8))
        >>> model = keras.Model(inputs, ContextualConvBlock2D()(inputs))
        >>> set_cc_formulation(model, "batched_matmul")
        1
        >>> model.layers[-1].get_config()["formulation"]
        'batched_matmul'
    """
    formulation = argument_checks.check_choice("formulation", formulation, CC_FORMULATIONS)
    blocks = list(cc_blocks(model))
    for block in blocks:
        block.formulation = formulation
    return len(blocks)


def cc_formulation(name):
    """Removed in 0.6.0: raises, saying what to write instead."""
    raise RuntimeError(
        "keras_memblocks.layers.cc_formulation was removed in 0.6.0: a CC block's "
        "formulation is now its `formulation` argument, saved with the model, and the "
        "default 'auto' already gives every export (export_model and Keras' own "
        f"model.export) the edge form. For {name!r} everywhere, write "
        f"ContextualConvBlock2D(formulation={name!r}) or set_cc_formulation(model, {name!r})."
    )


def current_cc_formulation():
    """Removed in 0.6.0: raises, saying what to write instead."""
    raise RuntimeError(
        "keras_memblocks.layers.current_cc_formulation was removed in 0.6.0: read a CC "
        "block's `formulation` attribute (or its get_config()['formulation']) instead."
    )
