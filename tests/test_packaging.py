"""The install's metadata: the extras pyproject.toml declares are the ones the
package checks for, the version is written once, the release files exist.

`make test` also builds the sdist and wheel and installs the wheel away from
the source tree (tools/check_package.py).
"""

import re
import tomllib
from pathlib import Path

import keras_memblocks
from keras_memblocks.utils import extras

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DECLARED = PYPROJECT["project"]["optional-dependencies"]
# The developers' extras, not a user's.
TEST_EXTRAS = {"test", "test-tools", "docs"}


def _name(requirement):
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _expanded(extra):
    """The distributions an extra installs, its nested extras expanded."""
    names = set()
    for requirement in DECLARED[extra]:
        if _name(requirement) == extras.DISTRIBUTION:
            nested = re.search(r"\[(.*)\]", requirement).group(1)
            for inner in nested.split(","):
                names |= _expanded(inner.strip())
        else:
            names.add(_name(requirement))
    return names


def test_the_extras_the_package_checks_are_the_ones_pyproject_declares():
    user_extras = set(DECLARED) - TEST_EXTRAS - {"all"}
    assert user_extras == set(extras.EXTRAS)
    for extra in user_extras:
        assert _expanded(extra) == set(extras.EXTRAS[extra]), extra
    assert _expanded("all") == set().union(*(_expanded(e) for e in user_extras))


def test_the_core_install_is_keras_and_numpy():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == {"keras", "numpy"}


def test_the_version_is_written_once_and_the_changelog_and_citation_carry_it():
    # The readme is dynamic too: setup.py gives the README with plain-text relative links.
    assert PYPROJECT["project"]["dynamic"] == ["version", "readme"]
    version = keras_memblocks.__version__
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()
    assert f"version: {version}" in (ROOT / "CITATION.cff").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text()
