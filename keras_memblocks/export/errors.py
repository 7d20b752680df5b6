"""The error an export raises when a file does not convert or does not match Keras."""


class ExportError(RuntimeError):
    """An export that did not convert, or whose numbers differ from Keras.

    Raised by `export_model`, which then leaves nothing behind.

    Examples:
        >>> import pathlib, tempfile, keras
        >>> from keras_memblocks.export import ExportError, export_model
        >>> from keras_memblocks.models import vgg_like
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> try:  # opset 1 converts, but onnxruntime cannot run the file
        ...     export_model(vgg_like("mnist", width=1), out, formats=("onnx",), opset=1)
        ... except ExportError:
        ...     print("refused; left behind:", out.exists())
        refused; left behind: False
    """
