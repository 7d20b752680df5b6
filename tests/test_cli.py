"""The `memblocks` parser: its choices and help come from `keras_memblocks.registry`,
every flag has a help line, every command examples."""

import argparse
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

from keras_memblocks import cli
from keras_memblocks import registry

COMMAND = str(Path(sys.executable).with_name("memblocks"))
HELP_KINDS = {
    "train": ("recipes", "models", "datasets"),
    "reproduce": ("grids",),
    "export": ("export formats", "I/O types"),
}


def test_help_lists_every_registry_entry_without_importing_keras():
    # Run as users run it: the installed command, a fresh process; `-X importtime`
    # names every module the process imported.
    for command, kinds in HELP_KINDS.items():
        shown = subprocess.run(
            [sys.executable, "-X", "importtime", COMMAND, command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        imported = {line.split("|")[-1].strip() for line in shown.stderr.splitlines()}
        assert not imported & {"keras", "tensorflow", "jax", "torch"}, command
        for kind in kinds:
            for name, entry in registry.KINDS[kind].items():
                assert f"  {name}" in shown.stdout and entry.help in shown.stdout, (kind, name)


def _subparser(parser, name):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_a_new_registry_entry_is_a_choice_with_its_help_and_in_the_docs(monkeypatch):
    hook = Path(__file__).parents[1] / "tools" / "registry_tables.py"  # the docs' MkDocs hook
    spec = importlib.util.spec_from_file_location("registry_tables", hook)
    registry_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry_tables)
    new = registry.Model("tiny", "a tiny test net", "classification", "keras:Model")
    monkeypatch.setitem(registry.MODELS, "tiny", new)
    # The hook loads the registry's file by its path (no Keras import): the same source.
    assert Path(registry_tables.registry.__file__).resolve() == Path(registry.__file__).resolve()
    monkeypatch.setitem(registry_tables.registry.MODELS, "tiny", new)
    train = _subparser(cli._parser(), "train")
    lines = [line.split(maxsplit=1) for line in train.format_help().splitlines()]
    assert ["tiny", "a tiny test net"] in lines
    arguments = train.parse_args(["--model", "tiny"])
    assert arguments.model == "tiny"
    page = registry_tables.render("Models:\n\n<!-- registry: models -->\n")
    assert "| `tiny` | a tiny test net |" in page and "<!--" not in page


def test_every_registry_reference_resolves():
    from keras_memblocks.training import TrainingConfig
    from keras_memblocks.training import specs

    assert registry.TASKS == tuple(specs.TASKS)
    for entry in registry.MODELS.values():
        assert entry.task in registry.TASKS and callable(registry.load(entry.builder))
    for entry in registry.DATASETS.values():
        assert entry.task in registry.TASKS
        assert callable(registry.load(entry.load)) and callable(registry.load(entry.image_shape))
    for entry in registry.RECIPES.values():
        assert isinstance(registry.load(entry.config), TrainingConfig), entry.name
    for entry in registry.GRIDS.values():
        assert callable(registry.load(entry.rows)), entry.name
    for entries in registry.KINDS.values():
        for name, entry in entries.items():
            assert entry.name == name and entry.help and "\n" not in entry.help
            assert dataclasses.is_dataclass(entry)


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
    command = COMMAND
    alone = subprocess.run([command], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 0 and "{train,reproduce,export,predict,demo}" in alone.stdout
    version = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60)
    from keras_memblocks import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"memblocks {__version__}"
