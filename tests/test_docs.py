"""The documentation: the site builds strictly, names every public symbol, and its code runs.

`make docs` builds the site; here it is built again into a temporary folder
so that its inventory (`objects.inv`) can be read. Then the code of the
README and of every page of `docs/` runs, the way a reader would run it:
a page's `bash` blocks first, in order, in one temporary folder (with the
repository's `export/` scripts beside them), then its `python` blocks in
order, in one fresh interpreter, in the same folder. A block after
`<!-- docs-test: env NAME=VALUE ... -->` runs alone in its own process with
that environment; one after `<!-- docs-test: skip, why -->` is reported as
skipped with its reason (pytest -ra lists it). The `text` and `bibtex`
blocks are diagrams and citations.
"""

import importlib
import os
import re
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<directive>[^>]*?) -->\n)?```(?P<language>\w*)\n(?P<code>.*?)```",
    re.S,
)
RUNS = {"python", "bash"}
SHOWN = {"text", "bibtex"}  # diagrams and citations: nothing to run
# Code for other platforms (Android, iOS), shown with a skip that says why.
OTHER_PLATFORMS = {"kotlin", "swift", "javascript"}
# The public modules, and what each must show on its API page.
PUBLIC_MODULES = [
    "keras_memblocks.layers",
    "keras_memblocks.models",
    "keras_memblocks.models.hub_models",
    "keras_memblocks.data",
    "keras_memblocks.data.epochs",
    "keras_memblocks.training",
    "keras_memblocks.training.specs",
    "keras_memblocks.registry",
    "keras_memblocks.export",
    "keras_memblocks.edge",
    "keras_memblocks.analysis",
    "keras_memblocks.optimizers",
    "keras_memblocks.metrics",
    "keras_memblocks.model_files",
    "keras_memblocks.utils.extras",
]


def blocks(page):
    """`[(language, code, directive or None)]` of a page's fenced blocks."""
    return [(m["language"], m["code"], m["directive"]) for m in BLOCK.finditer(page.read_text())]


def page_id(page):
    return str(page.relative_to(ROOT))


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, "KERAS_BACKEND": "tensorflow", "JAX_PLATFORMS": "cpu", **extra}


def test_every_fenced_block_is_run_or_says_why_not():
    for page in PAGES:
        for language, code, directive in blocks(page):
            if language in RUNS or language in SHOWN:
                continue
            if language in OTHER_PLATFORMS and (directive or "").startswith("skip, "):
                continue
            pytest.fail(f"{page_id(page)}: a ```{language} block; write python, bash or text")
        for _, _, directive in blocks(page):
            if directive is not None:
                assert directive.startswith(("skip, ", "env ")), (page_id(page), directive)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**environment(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr[-4000:]
    assert "WARNING" not in built.stderr, built.stderr[-4000:]
    return folder


def inventory(site):
    """The object names of the built site's Sphinx inventory (objects.inv)."""
    data = (site / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    return {line.split()[0] for line in body.splitlines() if line.strip()}


def public_names(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # a module without __all__: its own public functions and classes
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", None) == module_name
            and callable(value)
        ]
    return sorted(names)


def test_the_api_reference_names_every_public_symbol(site):
    documented = inventory(site)
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in public_names(module)
        if f"{module}.{name}" not in documented
    ]
    assert missing == []


def test_the_notebooks_are_shown_with_their_outputs(site):
    for name in ("01_quickstart", "02_squeeze_and_remember", "03_contextual_convolution"):
        html = (site / "notebooks" / f"{name}.html").read_text()
        assert "data:image/png;base64" in html, f"{name}: no figure on its page"


def test_the_site_renders_what_the_pages_mean(site):
    # Each check would have caught a rendering bug the site had: `\|` inside a
    # code span in a table shows its backslash; a list right after a paragraph
    # line (no blank line) renders as one paragraph with "- " in it; a product
    # written with asterisks outside a code span (H*W ... H*W) renders as italics.
    for page in sorted(site.rglob("*.html")):
        html = page.read_text()
        assert "\\|" not in html, f"{page.name}: a literal \\| (write the choices without a pipe)"
        glued = re.search(r".{0,40}(\w<em>|</em>\w).{0,40}", html)
        assert glued is None, f"{page.name}: asterisks read as italics: {glued and glued[0]}"
        for paragraph in re.findall(r"<p>(.*?)</p>", html, re.S):
            assert not re.search(r"\n- \S", paragraph), (
                f"{page.name}: a list with no blank line before"
            )


def test_the_site_works_from_disk(site):
    # Material's offline plugin: search from file://, with no server and no
    # network (its worker shim is vendored, not loaded from unpkg).
    index = (site / "index.html").read_text()
    assert (site / "search" / "search_index.js").read_text().startswith("var __index = ")
    assert '<script src="assets/iframe-worker-shim.js"' in index and "unpkg.com" not in index


def test_the_layers_page_leads_with_the_blocks_and_shows_the_constants(site):
    from keras_memblocks.layers import CC_FORMULATIONS
    from keras_memblocks.layers import EMP_NAMES
    from keras_memblocks.layers import VARIANT_NAMES

    html = (site / "api" / "layers.html").read_text()
    order = [
        html.index(f'id="keras_memblocks.layers.{name}"')
        for name in ("SqueezeAndRemember2D", "ContextualConvBlock2D", "CBAM2D")
    ]
    assert order == sorted(order)

    def bare(text):  # the values, whatever quotes and line breaks show them
        return re.sub(r"[\s'\"]|&quot;|&#39;", "", text)

    text = bare(re.sub(r"<[^>]+>", "", html))
    for values in (VARIANT_NAMES, EMP_NAMES, CC_FORMULATIONS):
        assert bare(str(values)) in text, values


def test_the_export_guide_shows_the_browser_script_make_test_edge_runs():
    script = (ROOT / "tests" / "web" / "classify.js").read_text()
    assert (
        "```javascript\n" + script + "```" in (ROOT / "docs" / "guides" / "export.md").read_text()
    )


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_code_of_each_page_runs(page, tmp_path):
    found = blocks(page)
    (tmp_path / "export").symlink_to(ROOT / "export")
    for language, code, directive in found:
        if language != "bash" or directive:
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=environment(),
            timeout=900,
        )
        assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    python = [code for language, code, d in found if language == "python" and not d]
    if python:
        run_python(python, tmp_path, environment())
    for language, code, directive in found:
        if not (directive and directive.startswith("env ")):
            continue
        pairs = (pair.split("=", 1) for pair in directive[4:].split())
        extra = environment(**{name: value for name, value in pairs})
        if language == "python":
            run_python([code], tmp_path, extra)
        else:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                env=extra,
                timeout=900,
            )
            assert result.returncode == 0, f"{code}\n{result.stderr[-3000:]}"


SKIPPED = [
    pytest.param(directive[len("skip, ") :], id=f"{page_id(page)}:{index}")
    for page in PAGES
    for index, (language, _, directive) in enumerate(blocks(page))
    if language in RUNS and directive and directive.startswith("skip, ")
]


@pytest.mark.parametrize("reason", SKIPPED)
def test_blocks_not_run_here_say_why(reason):
    pytest.skip(f"not run here: {reason}")


# Runs the page's python blocks in order in one namespace, saying which one failed.
DRIVER = textwrap.dedent("""
    import json, sys
    namespace = {"__name__": "__main__"}
    for index, code in enumerate(json.load(sys.stdin)):
        try:
            exec(compile(code, f"python block {index + 1}", "exec"), namespace)
        except BaseException:
            print(f"\\n--- python block {index + 1} failed:\\n{code}", file=sys.stderr)
            raise
""")


def run_python(codes, cwd, env):
    import json

    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps(codes),
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_every_python_snippet_defines_what_it_uses(tmp_path):
    """Each python block runs on its own (a reader copies one, not the page): no
    name it uses comes from an earlier block (pyflakes' undefined-name check, F821)."""
    for page in PAGES:
        for index, (language, code, _) in enumerate(blocks(page)):
            if language == "python":
                name = f"{page_id(page).replace('/', '__')}__block{index + 1}.py"
                (tmp_path / name).write_text(code)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821"]
        + ["--output-format", "concise", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
