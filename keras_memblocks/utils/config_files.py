"""Recipe overrides from a YAML or JSON file, read in bounded time and memory.

This module imports neither Keras nor TensorFlow, so that `memblocks train
--config FILE` refuses a bad file at once.
"""

import json
from pathlib import Path

from keras_memblocks.utils import extras

extras.require("train", "keras_memblocks.utils.config_files")  # PyYAML comes with [train]

import yaml  # noqa: E402 (after the extra is checked)

from keras_memblocks.utils.files import check_regular_file  # noqa: E402

CONFIG_FILE_LIMIT = 100_000  # bytes


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` without aliases (`*name`): a recipe never needs one, and
    nested aliases let a few hundred bytes expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not allowed in a config file",
                self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)


def load_config_file(path):
    """Overrides from a YAML or JSON file (a mapping of field -> value).

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_memblocks.training import load_config_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.json"
        >>> _ = path.write_text('{"epochs": 3, "learning_rate": 0.05}')
        >>> load_config_file(path)
        {'epochs': 3, 'learning_rate': 0.05}
    """
    path = Path(path)
    size = check_regular_file(path, "config file")
    if size > CONFIG_FILE_LIMIT:
        raise ValueError(
            f"Config file {str(path)!r} is {size:,} bytes; a config of recipe fields is a few "
            f"hundred bytes, and at most {CONFIG_FILE_LIMIT:,} are read."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"Config file {str(path)!r} is not UTF-8 text (byte {error.start}): save it as "
            "UTF-8 YAML or JSON."
        ) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            try:
                overrides = yaml.load(text, Loader=_NoAliasLoader) or {}
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                raise ValueError(f"{getattr(error, 'problem', None) or error}{where}") from None
        else:
            try:
                overrides = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{error.msg} at line {error.lineno}, column {error.colno}"
                ) from None
    except ValueError as error:
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON (or a .yaml / .yml file)"
        raise ValueError(f"Config file {str(path)!r} is not valid {kind}: {error}.") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"Config file {str(path)!r} must hold a mapping of recipe fields.")
    return overrides
