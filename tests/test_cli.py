"""The `memblocks` parser's names, which it writes out so that `--help` needs no
Keras, are the registries' names."""

import argparse
import subprocess
import sys
from pathlib import Path

from keras_memblocks import cli
from keras_memblocks.export.metadata import IO_TYPES
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
    assert cli.IO_TYPES == IO_TYPES


def _actions(parser):
    for action in parser._actions:
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield from _actions(subparser)


def test_every_command_and_flag_has_a_help_line():
    empty = [
        f"{prog} {'/'.join(action.option_strings) or action.dest}"
        for prog, action in _actions(cli._parser())
        if not (action.help or "").strip() and action.help != argparse.SUPPRESS
    ]
    assert empty == []


def test_every_command_ends_its_help_with_examples():
    subparsers = next(
        action
        for action in cli._parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    for name, parser in subparsers.choices.items():
        assert f"examples:\n  memblocks {name}" in parser.format_help(), name


def test_memblocks_alone_prints_the_commands_and_version_answers():
    command = str(Path(sys.executable).with_name("memblocks"))
    alone = subprocess.run([command], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 0 and "{train,reproduce,export,predict,demo}" in alone.stdout
    version = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60)
    from keras_memblocks import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"memblocks {__version__}"
