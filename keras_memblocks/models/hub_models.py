"""keras-hub backbones and tasks with blocks inserted (the `[hub]` extra).

A keras-hub backbone class rebuilds its architecture from its arguments
(`stackwise_num_filters`, ...), so a `ResNetBackbone` whose graph holds
blocks cannot honestly stay a `ResNetBackbone`: its config would bring it
back without them. `insert_blocks` returns a `BackboneWithBlocks` instead:
a keras-hub `Backbone` whose config is its graph, which keeps what tasks
and users read off a backbone (`pyramid_outputs`, `data_format`,
`image_shape`). A task (`ImageClassifier`, ...) keeps its own class: it is
rebuilt around the new backbone from its config, with its preprocessor and
its head's weights.
"""

from keras_memblocks.utils import extras

extras.require("hub", "keras_memblocks.models.hub_models")

import keras
import keras_hub

from keras_memblocks.models.weight_transfer import copy_weights_by_name
from keras_memblocks.utils import compat


@keras.saving.register_keras_serializable(package="keras_memblocks")
class BackboneWithBlocks(keras_hub.models.FeaturePyramidBackbone):
    """A keras-hub backbone whose graph holds blocks (what `insert_blocks`
    returns for a keras-hub backbone).

    It is a `keras_hub.models.Backbone` (and a `FeaturePyramidBackbone`), so
    keras-hub tasks accept it, and it saves and loads as `.keras` (with
    `safe_mode=True`) and as a keras-hub preset (`save_to_preset`, then
    `keras_hub.models.Backbone.from_preset`, after `import keras_memblocks`). Kept from the original
    backbone: the graph with its weights and names, `pyramid_outputs` (each
    level now the output of the block that follows its layer, if any),
    `data_format`, `image_shape` and the dtype policy. Not kept: the
    original class and its architecture arguments (`from_preset` of the
    original class, `stackwise_num_filters`, ...), which would rebuild the
    network without its blocks; `source_class` names where it came from.

    Args:
        *args: the graph's `inputs` and `outputs`, as for `keras.Model`.
        pyramid_layers: `{level: layer name}`; the level's feature map is
            that layer's output.
        image_shape: the input's shape without the batch axis.
        data_format: `"channels_last"` or `"channels_first"`.
        source_class: the registered name of the backbone it came from.

    Examples:
        >>> import keras_hub
        >>> from keras_memblocks.models import insert_blocks
        >>> resnet = keras_hub.models.ResNetBackbone(
        ...     input_conv_filters=[64], input_conv_kernel_sizes=[3],
        ...     stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
        ...     stackwise_num_strides=[1, 2], block_type="basic_block",
        ...     use_pre_activation=False, image_shape=(32, 32, 3))
        >>> backbone = insert_blocks(resnet, "cc", after=["stack1_block0_out"])
        >>> type(backbone).__name__, backbone.source_class
        ('BackboneWithBlocks', 'keras_hub>ResNetBackbone')
        >>> backbone.pyramid_layers  # each level now the block's output
        {'P2': 'stack0_block0_out', 'P3': 'stack1_block0_out_cc'}
    """

    # Keyword-only arguments after *args: Keras then treats the constructor
    # as a functional one, so get_config serializes the graph.
    def __init__(
        self,
        *args,
        pyramid_layers=None,
        image_shape=None,
        data_format=None,
        source_class=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.pyramid_layers = dict(pyramid_layers or {})
        self.pyramid_outputs = {
            level: self.get_layer(name).output for level, name in self.pyramid_layers.items()
        }
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.data_format = data_format
        self.source_class = source_class

    def get_config(self):
        config = compat.Functional.get_config(self)  # the graph half of the config
        config.update(
            {
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                "pyramid_layers": self.pyramid_layers,
                "image_shape": self.image_shape,
                "data_format": self.data_format,
                "source_class": self.source_class,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return compat.functional_from_config(cls, config, custom_objects=custom_objects)


def is_hub_backbone(model):
    """Whether `model` is a keras-hub `Backbone`."""
    return isinstance(model, keras_hub.models.Backbone)


def is_hub_task(model):
    """Whether `model` is a keras-hub `Task` (an `ImageClassifier`, ...)."""
    return isinstance(model, keras_hub.models.Task)


def backbone_with_blocks(original, rebuilt, produced):
    """`rebuilt` (a functional clone of the keras-hub backbone `original`)
    as a `BackboneWithBlocks`; `produced` maps each original layer's name to
    the tensor that now stands for its output (a block's, where one was
    inserted after it)."""
    pyramid_layers = {}
    for level, tensor in getattr(original, "pyramid_outputs", {}).items():
        replacement = produced[compat.producing_layer_name(tensor)]
        pyramid_layers[level] = compat.producing_layer_name(replacement)
    return BackboneWithBlocks(
        inputs=rebuilt.input,
        outputs=rebuilt.output,
        name=original.name,
        pyramid_layers=pyramid_layers,
        image_shape=getattr(original, "image_shape", None),
        data_format=getattr(original, "data_format", None),
        source_class=keras.saving.get_registered_name(type(original)),
        dtype=original.dtype_policy,
    )


def task_around(task, backbone):
    """The keras-hub task `task` (same class, config, preprocessor and head
    weights) rebuilt around `backbone`."""
    config = task.get_config()
    config["backbone"] = backbone
    config["preprocessor"] = task.preprocessor
    rebuilt = type(task).from_config(config)
    copy_weights_by_name(task, rebuilt, exclude={task.backbone.name})
    return rebuilt


def check_paths_in_backbone(task, paths):
    """Blocks go into a task's backbone; its head (pooling, dense) is the
    task class's own code."""
    prefix = f"{task.backbone.name}/"
    for path in paths:
        if not path.startswith(prefix):
            raise ValueError(
                f"Layer {path!r} is in the head of the {type(task).__name__}, which the task "
                f"class builds itself: insert blocks into its backbone (paths starting with "
                f"{prefix!r})."
            )
    return [path[len(prefix) :] for path in paths]
