"""Running an exported file on a device: the file's runtime and NumPy, nothing else.

What `memblocks predict MODEL IMAGE` runs, and what `export/run_tflite.py`
and `export/run_onnx.py` load from a clone. This module imports nothing
of TensorFlow, Keras or the rest of this package (an import-linter contract
in pyproject.toml), so that it runs where only `ai-edge-litert` or
`onnxruntime` is installed; `memblocks predict` itself imports no Keras.

Examples:
    >>> import pathlib, tempfile, numpy as np
    >>> from keras_memblocks.edge import predict
    >>> from keras_memblocks.export import export_model
    >>> from keras_memblocks.models import vgg_like
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = export_model(vgg_like("mnist", width=1), out, formats=("tflite",),
    ...                  labels=[f"digit {i}" for i in range(10)])
    >>> result = predict(out / "model.tflite", np.zeros((28, 28, 1), "float32"))
    >>> sorted(result), len(result["top5"]), result["top1"]["label"].startswith("digit")
    (['top1', 'top5'], 5, True)
"""

import json
import os

import numpy as np

METADATA_NAME = "keras_memblocks"
"""The name of the TFLite metadata entry and of the ONNX `metadata_props` key."""
RUNTIMES = {".tflite": "ai-edge-litert", ".onnx": "onnxruntime"}
"""The package each file type needs (`pip install` it)."""


def check_file(path, what):
    """Raises a one-line `ValueError` unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise ValueError(f"No {what} file {str(path)!r}.")


def file_kind(path):
    """`".tflite"` or `".onnx"`, or a one-line `ValueError`."""
    kind = os.path.splitext(str(path))[1].lower()
    if kind not in RUNTIMES:
        raise ValueError(f"{path}: a .tflite or .onnx file is needed, not {kind or 'no suffix'!r}.")
    return kind


def runtime_missing(kind):
    """The one line to print when the runtime of `kind` is not installed."""
    return f"running a {kind} file needs {RUNTIMES[kind]}: pip install {RUNTIMES[kind]} numpy"


# === Quantized tensors ===


def quantize(values, details):
    """`values` as a tensor of `details` (a LiteRT input's) takes them:
    unchanged for float, `round(x / scale + zero_point)` for int8 and uint8."""
    dtype = np.dtype(details["dtype"])
    if dtype.kind == "f":
        return np.asarray(values, dtype)
    scale, zero_point = details["quantization"]
    limits = np.iinfo(dtype)
    quantized = np.round(np.asarray(values) / scale + zero_point)
    return np.clip(quantized, limits.min, limits.max).astype(dtype)


def dequantize(values, details):
    """The float values of a LiteRT int8 or uint8 output (`values` unchanged
    for float)."""
    if np.dtype(details["dtype"]).kind == "f":
        return values
    scale, zero_point = details["quantization"]
    return (values.astype("float32") - zero_point) * scale


def in_batches(run_batch, inputs, batch_size):
    """`run_batch` over `inputs` in batches of a file's fixed `batch_size`
    (`None`: all at once); the last batch is padded with copies of the last
    image and the padding's outputs dropped."""
    inputs = np.asarray(inputs)
    if batch_size is None or batch_size == len(inputs):
        return np.asarray(run_batch(inputs))
    outputs = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        padding = batch_size - len(chunk)
        if padding:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], padding, axis=0)])
        outputs.append(np.asarray(run_batch(chunk))[: batch_size - padding])
    return np.concatenate(outputs)


def fixed_batch(dimension):
    """A file's batch size if it is fixed, else `None` (-1, `"batch"`, None)."""
    return int(dimension) if isinstance(dimension, (int, np.integer)) and dimension > 0 else None


# === Metadata ===


def _onnx_metadata(session):
    props = session.get_modelmeta().custom_metadata_map
    return json.loads(props[METADATA_NAME]) if METADATA_NAME in props else None


def read_metadata(path):
    """The metadata `export_model` wrote into a `.tflite` or `.onnx` file, or `None`.

    Needs only the file's runtime: `ai_edge_litert` (its flatbuffer schema)
    for TFLite, `onnx` (or onnxruntime's model metadata) for ONNX.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.export import export_model, read_metadata
        >>> from keras_memblocks.models import vgg_like
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> labels = [f"digit {i}" for i in range(10)]
        >>> _ = export_model(vgg_like("mnist", width=1), out, formats=("tflite", "onnx"),
        ...                  labels=labels, batch_size=1)
        >>> tflite, onnx = read_metadata(out / "model.tflite"), read_metadata(out / "model.onnx")
        >>> tflite["output"]["labels"][3], tflite["input"]["shape"], tflite == onnx
        ('digit 3', [1, 28, 28, 1], True)
    """
    if file_kind(path) == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return _onnx_metadata(session)
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as file:
        data = file.read()
    model = schema.Model.GetRootAsModel(data, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name().decode() == METADATA_NAME:
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength():
                raw = buffer.DataAsNumpy().tobytes()
            else:  # a large model keeps its buffers after the flatbuffer
                raw = data[buffer.Offset() : buffer.Offset() + buffer.Size()]
            return json.loads(raw)
    return None


# === Images and results ===


def load_image(path, height, width, channels):
    """A float32 image (H, W, C) from a .npy array or an image file.

    A .npy file is used as is (already preprocessed like the training data);
    an image file (needs Pillow) is resized to the model's input and scaled
    to [0, 1], the preprocessing of the embedded digits.
    """
    check_file(path, "image")
    height, width, channels = int(height), int(width), int(channels)
    if str(path).endswith(".npy"):
        try:
            image = np.load(path, allow_pickle=False).astype("float32")
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"{path} is not a .npy array: {error}") from None
    else:
        from PIL import Image  # optional dependency of the edge side

        mode = "L" if channels == 1 else "RGB"
        image = Image.open(path).convert(mode).resize((width, height))
        image = np.asarray(image, dtype="float32") / 255.0
        if channels == 1:
            image = image[..., None]
    if image.shape != (height, width, channels):
        raise ValueError(
            f"{path}: image of shape {image.shape}, the model takes "
            f"{(height, width, channels)}; resize it (an image file other "
            "than .npy is resized for you, with Pillow)"
        )
    return image


def report(probabilities, save_mask=None, labels=None):
    """The JSON-ready result for one image's model output.

    A classifier's (classes,) output gives the top class and the top 5 (with
    their labels, where the file has them); a segmentation model's (H, W,
    classes) output gives the number of pixels of each class, and
    `save_mask` saves the (H, W) class map as .npy.
    """
    if probabilities.ndim == 1:
        top = top_classes(probabilities, labels=labels)
        return {"top1": top[0], "top5": top}
    mask = probabilities.argmax(-1)
    if save_mask:
        np.save(save_mask, mask)
    classes, counts = np.unique(mask, return_counts=True)
    return {
        "segmentation": {
            "shape": list(mask.shape),
            "pixels_per_class": {int(c): int(n) for c, n in zip(classes, counts)},
        }
    }


def top_classes(probabilities, k=5, labels=None):
    """The `k` most probable classes, `[{"class", "probability"(, "label")}]`.

    Stable and descending: ties go to the lowest class, as argmax breaks them
    (int8 outputs step in 1/256 and tie often).

    Examples:
        >>> import numpy as np
        >>> from keras_memblocks.edge import top_classes
        >>> top = top_classes(np.array([0.25, 0.5, 0.25]), k=2, labels=["cat", "dog", "fox"])
        >>> [(entry["label"], entry["probability"]) for entry in top]
        [('dog', 0.5), ('cat', 0.25)]
    """
    order = np.argsort(-probabilities, kind="stable")[:k]
    top = [{"class": int(i), "probability": float(probabilities[i])} for i in order]
    if labels:
        for entry in top:
            entry["label"] = labels[entry["class"]]
    return top


# === Running a file ===


class Model:
    """An exported `.tflite` or `.onnx` file, ready to run on float32 images.

    Takes any number of images whatever the file's batch (a fixed-batch file
    runs them in batches), quantizes the input and dequantizes the output of
    an int8 or uint8 file, and knows the file's metadata.
    """

    def __init__(self, path):
        check_file(path, "model")
        self.path, self.kind = str(path), file_kind(path)
        try:
            self._load()
        except ModuleNotFoundError as error:
            if error.name in ("ai_edge_litert", "onnxruntime"):
                raise ValueError(runtime_missing(self.kind)) from None
            raise
        except (RuntimeError, ValueError, OSError) as error:  # the runtimes' own types derive
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise ValueError(f"{path} does not load in {RUNTIMES[self.kind]}: {first}") from None
        except Exception as error:  # onnxruntime's InvalidProtobuf, Fail: not Python's types
            if type(error).__module__.startswith("onnxruntime"):
                raise ValueError(f"{path} does not load in onnxruntime: {error}") from None
            raise

    def _load(self):
        if self.kind == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=self.path)
            source = self._interpreter.get_input_details()[0]
            self.input_shape = [int(n) for n in source["shape_signature"]]
            self.metadata = read_metadata(self.path)
        else:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(
                self.path, providers=["CPUExecutionProvider"]
            )
            self.input_shape = [fixed_batch(n) or -1 for n in self._session.get_inputs()[0].shape]
            self.metadata = _onnx_metadata(self._session)  # not a second session of the file

    @property
    def labels(self):
        return (self.metadata or {}).get("output", {}).get("labels")

    def __call__(self, images):
        images = np.asarray(images, "float32")
        batch = fixed_batch(self.input_shape[0])
        if self.kind == ".onnx":
            name = self._session.get_inputs()[0].name
            return in_batches(lambda x: self._session.run(None, {name: x})[0], images, batch)
        return in_batches(self._run_tflite, images, batch)

    def _run_tflite(self, images):
        interpreter = self._interpreter
        source = interpreter.get_input_details()[0]
        if source["shape_signature"][0] == -1:
            interpreter.resize_tensor_input(source["index"], list(images.shape))
        interpreter.allocate_tensors()
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.set_tensor(source["index"], quantize(images, source))
        interpreter.invoke()
        return dequantize(interpreter.get_tensor(target["index"]), target)


def predict(model_path, image, save_mask=None):
    """Runs one image (H, W, C float32, or a path to a .npy or image file)
    through an exported file; returns `report`'s result."""
    model = Model(model_path)
    if not isinstance(image, np.ndarray):
        try:
            image = load_image(image, *model.input_shape[1:])
        except ModuleNotFoundError as error:
            if error.name != "PIL":
                raise
            raise ValueError(
                f"reading {image} needs Pillow: pip install pillow (or give a .npy array)"
            ) from None
    return report(model(image[None])[0], save_mask, model.labels)
