"""MkDocs hook: `<!-- registry: KIND -->` in a page becomes that registry's
table (`keras_memblocks.registry.markdown_table`), so the docs list exactly
what the package knows and a new entry appears without editing a page."""

import importlib.util
import re
from pathlib import Path

# The registry module alone, by its path: it imports only the standard library,
# while `import keras_memblocks` imports Keras and TensorFlow, whose start-up
# lines on stderr the strict docs build would read as warnings.
_PATH = Path(__file__).resolve().parents[1] / "keras_memblocks" / "registry.py"
_SPEC = importlib.util.spec_from_file_location("memblocks_registry_for_docs", _PATH)
registry = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(registry)

MARKER = re.compile(r"<!-- registry: ([A-Za-z/ ]+?) -->")


def render(markdown):
    """`markdown` with every registry marker replaced by its table."""
    return MARKER.sub(lambda match: registry.markdown_table(match.group(1)), markdown)


def on_page_markdown(markdown, page, config, files):
    return render(markdown)
