"""Every public symbol documents itself with a runnable example.

The examples themselves run as doctests (`--doctest-modules` over the
package, in the default suite)."""

import importlib
import inspect

import pytest

PACKAGES = [
    "keras_memblocks.layers",
    "keras_memblocks.models",
    "keras_memblocks.data",
    "keras_memblocks.training",
    "keras_memblocks.registry",
    "keras_memblocks.export",
    "keras_memblocks.analysis",
]
SYMBOLS = [
    (package, name)
    for package in PACKAGES
    for name in importlib.import_module(package).__all__
    if inspect.isclass(getattr(importlib.import_module(package), name))
    or inspect.isfunction(getattr(importlib.import_module(package), name))
]


def test_symbols_are_found():
    assert len(SYMBOLS) > 60


@pytest.mark.parametrize("package,name", SYMBOLS, ids=lambda value: str(value))
def test_public_symbol_has_a_runnable_example(package, name):
    symbol = getattr(importlib.import_module(package), name)
    docstring = inspect.getdoc(symbol) or ""
    assert ">>>" in docstring, f"{package}.{name} has no example in its docstring"
