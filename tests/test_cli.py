"""The `memblocks` parser's names, which it writes out so that `--help` needs no
Keras, are the registries' names."""

from keras_memblocks import cli
from keras_memblocks.export.model_export import FORMATS
from keras_memblocks.training import RECIPES
from keras_memblocks.training import recipes
from keras_memblocks.training import specs
from keras_memblocks.training.reproduction import GRIDS


def test_the_parsers_names_are_the_registries_names():
    assert cli.RECIPE_NAMES == tuple(RECIPES)
    assert cli.MODEL_NAMES == tuple(specs.MODELS)
    assert cli.DATASET_NAMES == tuple(specs.DATASETS)
    assert cli.STRATEGY_NAMES == tuple(recipes.STRATEGIES)
    assert cli.TABLE_NAMES == tuple(GRIDS)
    assert cli.EXPORT_FORMATS == tuple(FORMATS)
