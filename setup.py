"""The wheel's long description: the README with its links into the repository
made plain text.

Everything else is in pyproject.toml. The README's relative links
(`docs/getting-started.md`) work on the repository's page and the docs site,
but resolve nowhere on a package index, and the project has no public address
to make them absolute yet; a link to a web address is kept as it is.
"""

import re
from pathlib import Path

from setuptools import setup

# [text](target) whose target is not a web address, a mail address or an anchor.
RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://|mailto:|#)[^)\s]+\)")


def long_description(readme):
    """`readme` with each relative Markdown link replaced by its text."""
    return RELATIVE_LINK.sub(r"\1", readme)


if __name__ == "__main__":
    setup(
        long_description=long_description(Path(__file__).with_name("README.md").read_text()),
        long_description_content_type="text/markdown",
    )
