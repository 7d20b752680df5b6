"""What a device app needs to know about an exported file, written into the file.

One dict (`describe`): class labels, the input's size, layout, dtype and
value range, what the output means, the blocks the net holds and the
package version. It goes into every file:

- **TFLite**: a `Model.metadata` entry named `keras_memblocks` holding the
  dict as JSON (`write_tflite_metadata`). That list of named buffers is the
  TFLite schema's own place for such data; LiteRT and TFLite Micro skip
  entries they do not know. TFLite Support's metadata writer
  (`tflite-support`, its `TFLITE_METADATA` flatbuffer) was the other choice:
  its last release (0.4.4, 2023) pins protobuf < 4, which TensorFlow 2.21
  cannot install beside, and its repository is archived.
  `keras_memblocks.edge.read_metadata` reads the entry back with
  `ai_edge_litert`'s schema alone, no TensorFlow.
- **ONNX**: a `metadata_props` entry named `keras_memblocks` (the same
  JSON; Netron and onnxruntime's `modelmeta` show it), the input
  named `image`, the output named for its meaning (`probabilities` or
  `logits`), the batch dimension named `batch` (`finish_onnx`).

`finish_onnx` also renumbers tf2onnx's generated names (`Transpose__98`,
`const_fold_opt__97`), which come from a counter that runs on across
exports in one process: renumbered in graph order, two exports of one
model give byte-identical files.
"""

import json
import re

import numpy as np

from keras_memblocks import __version__
from keras_memblocks import registry
from keras_memblocks.edge import METADATA_NAME

IO_TYPES = tuple(registry.IO_TYPES)
"""The input and output tensor types an int8 TFLite file can take (`--io-type`)."""


def _blocks(model):
    """The package's block layers in `model`: `{class name: count}`, with a CC
    block's variant and map, as `ContextualConvBlock2D(reduced, bilinear)`."""
    found = {}

    def visit(layer):
        for child in getattr(layer, "layers", []):
            name = type(child).__name__
            if type(child).__module__.startswith("keras_memblocks.layers"):
                if hasattr(child, "variant") and hasattr(child, "emp"):
                    name = f"{name}({child.variant}, {child.emp})"
                found[name] = found.get(name, 0) + 1
            visit(child)

    visit(model)
    return dict(sorted(found.items()))


def output_meaning(model):
    """`"probabilities"` when the model's last layer ends in a softmax or a
    sigmoid, else `"logits"`."""
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", type(last).__name__).lower()
    return "probabilities" if name in ("softmax", "sigmoid") else "logits"


def describe(model, batch_size, labels, input_range, io_type):
    """The metadata of a file exported from `model` (float32, deployed form)."""
    num_outputs = int(model.output.shape[-1])
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != num_outputs:
            raise ValueError(
                f"labels has {len(labels)} names and the model {num_outputs} outputs per "
                "example; give one label per class, in class-index order."
            )
    low, high = (float(value) for value in input_range)
    if not low < high:
        raise ValueError(
            f"input_range must be (low, high) with low < high. Received {input_range}."
        )
    shape = list(model.input.shape[1:])
    return {
        "package": "keras-memblocks",
        "package_version": __version__,
        "model": model.name,
        "blocks": _blocks(model),
        "input": {
            "name": "image",
            "shape": [batch_size, *shape],
            "layout": "NHWC (batch, height, width, channels)",
            "dtype": io_type,
            "value_range": [low, high],
            "note": "float32 pixels scaled to value_range; a model trained on grey images "
            "repeated to 3 channels takes them repeated. An int8 or uint8 input takes "
            "round(x / scale + zero_point), with the tensor's own scale and zero point.",
        },
        "output": {
            "name": output_meaning(model),
            "shape": [batch_size, *model.output.shape[1:]],
            "dtype": io_type,
            "meaning": output_meaning(model),
            "labels": labels,
        },
    }


def with_io_type(metadata, io_type):
    """`metadata` for a file whose input and output tensors are `io_type`
    (the ONNX file and float TFLite files take float32 whatever `--io-type`)."""
    return {
        **metadata,
        "input": {**metadata["input"], "dtype": io_type},
        "output": {**metadata["output"], "dtype": io_type},
    }


def write_tflite_metadata(model_bytes, metadata):
    """`model_bytes` with `metadata` as the `keras_memblocks` entry of the model's
    metadata list (replacing an earlier one)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    model.metadata = [
        entry for entry in (model.metadata or []) if _entry_name(entry) != METADATA_NAME
    ]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _entry_name(entry):
    name = entry.name
    return name.decode() if isinstance(name, bytes) else name


_COUNTER = re.compile(r"__(\d+)")


def _name_shared_constants(graph):
    """Names each initializer that several nodes read `shared_const__<k>`, k
    in order of first use. TensorFlow's constant folding keeps one of equal
    constants (the same reciprocal in every CC block) under the name of
    whichever it met first in a hash map, which changes from run to run."""
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    shared = {t.name for t in graph.initializer if readers.get(t.name, 0) > 1}
    renames = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in shared:
                renames.setdefault(name, f"shared_const__{len(renames)}")
                node.input[index] = renames[name]
    for tensor in graph.initializer:
        tensor.name = renames.get(tensor.name, tensor.name)


def finish_onnx(path, metadata):
    """Names the ONNX file's input, output and batch dimension, writes the
    metadata as `metadata_props`, and renumbers tf2onnx's generated names
    in graph order (byte-identical files from identical models)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    renames = {graph.input[0].name: "image", graph.output[0].name: metadata["output"]["name"]}
    numbers = {}

    def rename(name):
        if not name:
            return name
        if name in renames:
            return renames[name]
        return _COUNTER.sub(lambda m: f"__{numbers.setdefault(m.group(1), len(numbers))}", name)

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    for tensor in list(graph.initializer) + list(graph.sparse_initializer):
        target = tensor.values if hasattr(tensor, "values") else tensor
        target.name = rename(target.name)
    _name_shared_constants(graph)
    # tf2onnx lists initializers in the order of its counter's numbers.
    initializers = sorted(graph.initializer, key=lambda tensor: tensor.name)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    ends = list(graph.input) + list(graph.output)
    for info in ends + list(graph.value_info):
        info.name = rename(info.name)
        for index, dim in enumerate(info.type.tensor_type.shape.dim):
            if dim.dim_param:  # tf2onnx's `unk__183`; the ends' first axis is the batch
                batch = index == 0 and any(info is end for end in ends)
                dim.dim_param = "batch" if batch else rename(dim.dim_param)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(metadata, sort_keys=True)
    graph.doc_string = ""  # tf2onnx's conversion log, which names its counter's values
    model.doc_string = (
        f"{metadata['model']} exported by keras-memblocks {metadata['package_version']}; "
        f"input {metadata['input']['name']} {metadata['input']['shape']}, output "
        f"{metadata['output']['name']}."
    )
    onnx.save(model, str(path))
