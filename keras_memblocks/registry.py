"""Every name the package knows, once: recipes, models, datasets, grids, export
formats and their I/O types.

Each entry is a name, the one line of help that `memblocks --help` and the
docs print for it, plain data, and `"module:attribute"` references to the
code behind it, imported only when a run needs it (`load`). The module
imports nothing beyond the standard library, so the command's parser reads
its choices here without importing Keras or TensorFlow, and the training
registries (`keras_memblocks.training.specs`), the recipes, the grids, the
exporter, the docs' tables and the tests all read the same entries.

Adding a model, dataset, recipe or grid is one entry below (CONTRIBUTING:
"Adding a model", "Adding a dataset, recipe or grid").

Examples:
    >>> from keras_memblocks import registry
    >>> list(registry.DATASETS)[:2]
    ['digits', 'fashion_mnist']
    >>> registry.MODELS["cifar_resnet"].task
    'classification'
    >>> registry.load(registry.MODELS["cifar_resnet"].builder).__name__
    'cifar_resnet'
"""

import dataclasses
import importlib

__all__ = [
    "DATASETS",
    "DATASET_OPTIONS",
    "EXPORT_FORMATS",
    "GRIDS",
    "IO_TYPES",
    "KINDS",
    "MODELS",
    "RECIPES",
    "TASKS",
    "Choice",
    "Dataset",
    "Grid",
    "Model",
    "Recipe",
    "help_lines",
    "load",
    "markdown_table",
]

# === Entries ===


@dataclasses.dataclass(frozen=True)
class Model:
    """A network the trainer can build.

    Attributes:
        name: the recipe's `model`.
        help: one line for `--help` and the docs.
        task: `"classification"` or `"segmentation"`.
        builder: `"module:function"`, called with the recipe's `model_args`
            (`num_classes` and `input_shape` default to the dataset's).
        input_channels: `"module:function"`, `f(model_args) -> int`: the
            channels the model's layout takes, for a dataset that can give
            any number (the embedded digits); `None` for 3.

    Examples:
        >>> from keras_memblocks.registry import MODELS
        >>> MODELS["deeplabv3"].task, MODELS["deeplabv3"].builder
        ('segmentation', 'keras_memblocks.models:deeplabv3')
    """

    name: str
    help: str
    task: str
    builder: str
    input_channels: str = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset the trainer can read.

    Attributes:
        name: the recipe's `dataset`.
        help: one line for `--help` and the docs.
        task: `"classification"` or `"segmentation"`.
        num_classes: the classifier's width.
        image_shape: `"module:function"`, `f(config, channels) -> (H, W, C)`.
        load: `"module:function"`, `f(config, seed, channels) -> (train
            source, validation or None, test)` (`keras_memblocks.training.specs`).
        options: the `TrainingConfig` fields this dataset alone reads
            (`DATASET_OPTIONS`): another dataset's config must leave them at
            their defaults, and a run directory compares them only where
            its dataset reads them.

    Examples:
        >>> from keras_memblocks.registry import DATASETS
        >>> DATASETS["cifar100"].num_classes, DATASETS["cityscapes"].task
        (100, 'segmentation')
    """

    name: str
    help: str
    task: str
    num_classes: int
    image_shape: str
    load: str
    options: tuple = ()


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named `TrainingConfig`: `config` is `"module:attribute"` of it.

    Examples:
        >>> from keras_memblocks.registry import RECIPES
        >>> RECIPES["digits"].config
        'keras_memblocks.training.recipes:DIGITS'
    """

    name: str
    help: str
    config: str


@dataclasses.dataclass(frozen=True)
class Grid:
    """A `memblocks reproduce` grid: `rows` is `"module:function"` returning
    `(recipe, [(label, overrides), ...])`. A `study` runs seed by seed, its
    cells named by their labels.

    Examples:
        >>> from keras_memblocks.registry import GRIDS
        >>> [name for name, grid in GRIDS.items() if grid.study]
        ['fmnist-cc', 'fmnist-sr']
    """

    name: str
    help: str
    rows: str
    study: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
    """A named option with its help line (export formats, I/O types).

    Examples:
        >>> from keras_memblocks.registry import EXPORT_FORMATS
        >>> list(EXPORT_FORMATS)
        ['saved_model', 'tflite', 'onnx']
    """

    name: str
    help: str


def _by_name(*entries):
    return {entry.name: entry for entry in entries}


def load(reference):
    """The object a `"module:attribute"` reference names, importing its module.

    Examples:
        >>> from keras_memblocks import registry
        >>> registry.load("json:dumps")([1])
        '[1]'
    """
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


# === The registries ===

_MODELS = "keras_memblocks.models"
_SPECS = "keras_memblocks.training.specs"
_RECIPES = "keras_memblocks.training.recipes"
_GRIDS = "keras_memblocks.training.reproduction"

TASKS = ("classification", "segmentation")
"""The tasks a model or dataset can have (`keras_memblocks.training.specs.TASKS` holds their
losses and metrics)."""

MODELS = _by_name(
    Model(
        "vgg_like",
        "the CC paper's VGG-like nets (its MNIST and CIFAR layouts)",
        "classification",
        f"{_MODELS}:vgg_like",
        input_channels=f"{_SPECS}:vgg_like_channels",
    ),
    Model(
        "cifar_resnet",
        "ResNet-18/34/50 for 32x32 images (the SR paper's CIFAR nets)",
        "classification",
        f"{_MODELS}:cifar_resnet",
    ),
    Model(
        "cifar_vgg", "VGG-11/13/16/19 for 32x32 images", "classification", f"{_MODELS}:cifar_vgg"
    ),
    Model(
        "resnet50", "ImageNet ResNet-50 (the SR paper's)", "classification", f"{_MODELS}:resnet50"
    ),
    Model(
        "deeplabv3",
        "DeepLabv3, ResNet-50 backbone (the SR paper's Cityscapes net)",
        "segmentation",
        f"{_MODELS}:deeplabv3",
    ),
    Model("fcn", "FCN, ResNet-50 backbone", "segmentation", f"{_MODELS}:fcn"),
)
"""Name -> `Model` of every network a recipe can name."""

DATASETS = _by_name(
    Dataset(
        "digits",
        "scikit-learn's 1,797 digits, embedded (no download), resized to image_size",
        "classification",
        10,
        f"{_SPECS}:digits_shape",
        f"{_SPECS}:digits_for_run",
        options=("image_size",),
    ),
    Dataset(
        "fashion_mnist",
        "Fashion-MNIST, 28x28 grey (Keras' loader; Debian's dataset-fashion-mnist offline)",
        "classification",
        10,
        f"{_SPECS}:fashion_mnist_shape",
        f"{_SPECS}:fashion_mnist_for_run",
    ),
    Dataset(
        "mnist",
        "MNIST (tensorflow-datasets)",
        "classification",
        10,
        f"{_SPECS}:tfds_shape",
        f"{_SPECS}:tfds_for_run",
    ),
    Dataset(
        "cifar10",
        "CIFAR-10 (tensorflow-datasets)",
        "classification",
        10,
        f"{_SPECS}:tfds_shape",
        f"{_SPECS}:tfds_for_run",
    ),
    Dataset(
        "cifar100",
        "CIFAR-100 (tensorflow-datasets)",
        "classification",
        100,
        f"{_SPECS}:tfds_shape",
        f"{_SPECS}:tfds_for_run",
    ),
    Dataset(
        "imagenet2012",
        "ImageNet ILSVRC 2012 (tensorflow-datasets, manual download)",
        "classification",
        1000,
        f"{_SPECS}:tfds_shape",
        f"{_SPECS}:tfds_for_run",
    ),
    Dataset(
        "cityscapes",
        "Cityscapes fine, 19 classes (tensorflow-datasets, manual download), crop_size crops",
        "segmentation",
        19,
        f"{_SPECS}:tfds_shape",
        f"{_SPECS}:tfds_for_run",
        options=("crop_size",),
    ),
)
"""Name -> `Dataset` of every dataset a recipe can name."""

DATASET_OPTIONS = tuple(dict.fromkeys(o for entry in DATASETS.values() for o in entry.options))
"""The `TrainingConfig` fields one dataset alone reads (`Dataset.options`)."""

RECIPES = _by_name(
    Recipe(
        "sr-cifar10",
        "SR paper: CIFAR-10 ResNet-18, SR (3, 10), dropout2d",
        f"{_RECIPES}:SR_CIFAR10",
    ),
    Recipe(
        "sr-cifar100",
        "SR paper: CIFAR-100 ResNet-18, SR (3, 10), dropout",
        f"{_RECIPES}:SR_CIFAR100",
    ),
    Recipe(
        "sr-imagenet",
        "SR paper: ImageNet ResNet-50, SR (3, 10), dropout2d",
        f"{_RECIPES}:SR_IMAGENET",
    ),
    Recipe(
        "sr-cityscapes",
        "SR paper: Cityscapes DeepLabv3, SR (2, 2), auxiliary head",
        f"{_RECIPES}:SR_CITYSCAPES",
    ),
    Recipe(
        "cc-cifar100",
        "CC paper's CIFAR-100 VGG-like net, width 32, reduced CC after every conv",
        f"{_RECIPES}:CC_CIFAR100",
    ),
    Recipe(
        "cc-fashion-mnist",
        "Fashion-MNIST, the CC paper's MNIST net, width 8, reduced CC",
        f"{_RECIPES}:CC_FASHION_MNIST",
    ),
    Recipe(
        "sr-fashion-mnist",
        "Fashion-MNIST, CIFAR ResNet-18 width 8, SR (3, 10), dropout2d",
        f"{_RECIPES}:SR_FASHION_MNIST",
    ),
    Recipe(
        "digits",
        "the embedded digits, VGG-like width 8 with CC: minutes on a CPU",
        f"{_RECIPES}:DIGITS",
    ),
)
"""Name -> `Recipe` of the papers' settings (`memblocks train --recipe NAME`)."""

GRIDS = _by_name(
    Grid(
        "sr-table1",
        "SR paper Table 1: CIFAR-100 ResNets with dropout, dropout2d, DropBlock, SR; VGGs",
        f"{_GRIDS}:sr_table1",
    ),
    Grid(
        "sr-table2",
        "SR paper Table 2: CIFAR-100 ResNet-18/34 with SE or CBAM, and SR",
        f"{_GRIDS}:sr_table2",
    ),
    Grid("sr-table3", "SR paper Table 3: ImageNet ResNet-50", f"{_GRIDS}:sr_table3"),
    Grid("sr-table4", "SR paper Table 4: Cityscapes DeepLabv3 and FCN", f"{_GRIDS}:sr_table4"),
    Grid(
        "sr-table5",
        "SR paper Table 5: CIFAR-10 ResNets and VGGs, best SR settings",
        f"{_GRIDS}:sr_table5",
    ),
    Grid(
        "cc-table3", "CC paper Table 3: CIFAR-100 VGG-like, every CC variant", f"{_GRIDS}:cc_table3"
    ),
    Grid(
        "cc-fig4",
        "CC paper Fig. 4: accuracy against weights, MNIST and CIFAR, widths 1-48",
        f"{_GRIDS}:cc_fig4",
    ),
    Grid(
        "fmnist-cc",
        "Fashion-MNIST study of Fig. 4: 4 widths x 5 blocks, and the swapped split",
        f"{_GRIDS}:fmnist_cc",
        study=True,
    ),
    Grid(
        "fmnist-sr",
        "Fashion-MNIST study of SR's CIFAR rows: SR, dropout2d, SE beside the plain net",
        f"{_GRIDS}:fmnist_sr",
        study=True,
    ),
)
"""Name -> `Grid` of `memblocks reproduce`'s experiment grids."""

EXPORT_FORMATS = _by_name(
    Choice("saved_model", "TensorFlow SavedModel (TF Serving, TensorFlow.js, OpenVINO)"),
    Choice("tflite", "LiteRT / TFLite flatbuffer (phones, microcontrollers)"),
    Choice("onnx", "ONNX (ONNX Runtime, OpenVINO, browsers)"),
)
"""Name -> `Choice` of the files `export_model` writes."""

IO_TYPES = _by_name(
    Choice("float32", "float inputs and outputs, quantized inside"),
    Choice("int8", "int8 inputs and outputs (TFLite Micro, most NPUs)"),
    Choice("uint8", "uint8 inputs and outputs (camera pixels)"),
)
"""Name -> `Choice` of an int8 TFLite file's input and output types."""

KINDS = {
    "recipes": RECIPES,
    "models": MODELS,
    "datasets": DATASETS,
    "grids": GRIDS,
    "export formats": EXPORT_FORMATS,
    "I/O types": IO_TYPES,
}
"""Every registry by what it holds: the docs' tables and the command's help list these."""


def help_lines(entries, indent=2):
    """`entries` as aligned `name  help` lines, for `--help` epilogs.

    Examples:
        >>> from keras_memblocks import registry
        >>> print(registry.help_lines(registry.IO_TYPES).splitlines()[0])
          float32  float inputs and outputs, quantized inside
    """
    width = max(len(name) for name in entries)
    return "\n".join(
        f"{' ' * indent}{name.ljust(width)}  {entry.help}" for name, entry in entries.items()
    )


def markdown_table(kind):
    """A registry as a Markdown table of names and help lines (the docs' tables).

    Examples:
        >>> from keras_memblocks import registry
        >>> print(registry.markdown_table("export formats").splitlines()[2])
        | `saved_model` | TensorFlow SavedModel (TF Serving, TensorFlow.js, OpenVINO) |
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown registry {kind!r}. Valid: {', '.join(KINDS)}")
    rows = [f"| `{name}` | {entry.help} |" for name, entry in KINDS[kind].items()]
    return "\n".join(["| Name | What it is |", "| --- | --- |", *rows])
