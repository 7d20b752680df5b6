"""The exported ONNX file in a browser: ONNX Runtime Web (wasm) in headless Chromium.

`make test-edge` runs it (opt-in: it needs npm's `onnxruntime-web`, which
that target installs into tests/web/node_modules, and Debian's `chromium`).
The page runs `tests/web/classify.js`, the snippet the export guide shows,
on held-out digits served over HTTP from a temporary folder, and writes its
results into the page; Chromium's `--dump-dom` hands them back.
"""

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_memblocks.data import load_digits
from keras_memblocks.export import export_model
from keras_memblocks.models import vgg_like

WEB = Path(__file__).resolve().parent / "web"
ORT = WEB / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.web,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not ORT.exists(), reason="needs onnxruntime-web: make test-edge installs it (npm)"
    ),
]

PAGE = """<!doctype html><html><body><pre id="out">running</pre>
<script src="ort.min.js"></script><script src="classify.js"></script>
<script>
fetch("images.json").then(r => r.json()).then(d => classify(d.pixels, d.count))
  .then(r => { document.getElementById("out").textContent = JSON.stringify(r); })
  .catch(e => { document.getElementById("out").textContent = "ERROR " + e; });
</script></body></html>
"""


def _serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(
    "blocks",
    [{"block": "cc", "after": "conv"}, {"block": "sr", "after": "conv", "num_memory_blocks": 2}],
    ids=["cc", "sr"],
)
def test_onnx_file_runs_in_the_browser(blocks, tmp_path):
    (x_train, y_train), (x_test, _) = load_digits(28, channels=1)
    keras.utils.set_random_seed(0)
    model = vgg_like("mnist", width=4, blocks=blocks)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
    images = x_test[:64]
    expected = model.predict(images, verbose=0)
    site = tmp_path / "site"
    labels = [f"digit {i}" for i in range(10)]
    export_model(model, site, formats=("onnx",), parity_inputs=images, labels=labels)
    for name in ["ort.min.js", *(p.name for p in ORT.glob("ort-wasm-simd-threaded*"))]:
        shutil.copy(ORT / name, site / name)
    shutil.copy(WEB / "classify.js", site / "classify.js")
    (site / "index.html").write_text(PAGE)
    (site / "images.json").write_text(
        json.dumps({"pixels": images.ravel().tolist(), "count": len(images)})
    )
    server = _serve(site)
    try:
        dumped = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=60000",
                "--dump-dom",
                f"http://127.0.0.1:{server.server_address[1]}/index.html",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.shutdown()
    text = html.unescape(re.search(r'<pre id="out">(.*?)</pre>', dumped.stdout, re.S)[1])
    assert not text.startswith(("ERROR", "running")), (text[:500], dumped.stderr[-2000:])
    results = json.loads(text)
    scores = np.array([r["scores"] for r in results], dtype="float32")
    assert np.abs(scores - expected).max() <= 1e-4
    assert [r["class"] for r in results] == expected.argmax(-1).tolist()
    assert results[0]["label"] == labels[results[0]["class"]]
