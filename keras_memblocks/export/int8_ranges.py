"""Int8 TFLite models that XNNPACK can prepare, when calibration saw a dead unit.

A ReLU unit that is zero on every calibration image (common in the small
bottlenecks of SE and CBAM: a width-8 net's SE has one hidden unit) gets a
collapsed range from the TFLite converter: scale 2e-6 / 255 ~ 7.8e-9. The
layer that produces it then needs a requantization scale
(input scale x weight scale / output scale) in the hundreds, above what
XNNPACK accepts (< 256), and the whole delegate fails to prepare ("failed
to create XNNPACK runtime"), so the model does not run with LiteRT's
default delegate at all.

`widen_collapsed_ranges` gives each such tensor the scale that makes its
producer's requantization scale 1, and requantizes the bias of every
fully connected or convolution layer that reads it (its bias scale is
input scale x weight scale). Every value the calibration saw (zero) is
still exact; a unit that comes alive on other inputs now keeps its value
instead of saturating at 127 x 7.8e-9.

Hand-written on the TFLite flatbuffer (TensorFlow's own schema and
`flatbuffer_utils`) because neither the converter nor LiteRT has an option
for a minimum activation range.
"""

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

# The converter's range for a constant-zero tensor is [0, 2e-6]: 7.8e-9 a step.
COLLAPSED_SCALE = 1e-8
_OPS = schema.BuiltinOperator
# Ops whose output is input x weights (+ bias): inputs 0, 1, 2.
_WEIGHTED = {_OPS.FULLY_CONNECTED, _OPS.CONV_2D, _OPS.DEPTHWISE_CONV_2D}
# Ops that read any input scale and keep no data derived from it.
_SCALE_FREE = {
    _OPS.LOGISTIC,
    _OPS.TANH,
    _OPS.ADD,
    _OPS.SUB,
    _OPS.MUL,
    _OPS.HARD_SWISH,
    _OPS.DEQUANTIZE,
}


def widen_collapsed_ranges(model_bytes):
    """Returns `(model_bytes, names)`: the int8 model with every collapsed
    activation range widened, and the names of the tensors widened (empty:
    the model is returned unchanged)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    codes = [_builtin_code(code) for code in model.operatorCodes]
    widened = []
    for graph in model.subgraphs:
        consumers = {}
        for op in graph.operators:
            for index in op.inputs:
                consumers.setdefault(index, []).append(op)
        for op in graph.operators:  # in execution order: inputs are final
            if codes[op.opcodeIndex] not in _WEIGHTED:
                continue
            for index in op.outputs:
                tensor = graph.tensors[index]
                if not _collapsed(tensor):
                    continue
                readers = consumers.get(index, [])
                if not all(_can_follow(model, graph, codes, reader, index) for reader in readers):
                    continue
                input_scale = _scales(graph.tensors[op.inputs[0]])[0]
                weight_scale = float(np.max(_scales(graph.tensors[op.inputs[1]])))
                new_scale = input_scale * weight_scale
                for reader in readers:
                    if codes[reader.opcodeIndex] in _WEIGHTED:
                        _rescale_bias(model, graph, reader, new_scale)
                tensor.quantization.scale = np.array([new_scale], dtype=np.float32)
                name = tensor.name
                widened.append(name.decode() if isinstance(name, bytes) else name)
    if not widened:
        return model_bytes, []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), widened


def _builtin_code(code):
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _scales(tensor):
    return np.asarray(tensor.quantization.scale, dtype=np.float64)


def _collapsed(tensor):
    q = tensor.quantization
    return (
        tensor.type == schema.TensorType.INT8
        and q is not None
        and q.scale is not None
        and len(q.scale) == 1
        and 0 < q.scale[0] <= COLLAPSED_SCALE
    )


def _can_follow(model, graph, codes, reader, index):
    """Whether `reader` still computes the same thing once its input
    `index` has another scale (a weighted op: once its bias is requantized)."""
    code = codes[reader.opcodeIndex]
    if code in _SCALE_FREE:
        return True
    if code not in _WEIGHTED or list(reader.inputs).index(index) != 0:
        return False
    if len(reader.inputs) < 3 or reader.inputs[2] < 0:
        return True  # no bias to requantize
    bias = graph.tensors[reader.inputs[2]]
    return bias.type == schema.TensorType.INT32 and model.buffers[bias.buffer].data is not None


def _rescale_bias(model, graph, op, input_scale):
    """The int32 bias of `op` for its new input scale (bias scale = input
    scale x weight scale, per output channel)."""
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return
    bias = graph.tensors[op.inputs[2]]
    weight_scales = _scales(graph.tensors[op.inputs[1]])
    old_scales = _scales(bias)
    new_scales = input_scale * weight_scales
    buffer = model.buffers[bias.buffer]
    values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype="<i4")
    limits = np.iinfo(np.int32)
    rescaled = np.clip(np.round(values * (old_scales / new_scales)), limits.min, limits.max)
    rescaled = rescaled.astype("<i4")
    buffer.data = np.frombuffer(rescaled.tobytes(), dtype=np.uint8)
    bias.quantization.scale = new_scales.astype(np.float32)
