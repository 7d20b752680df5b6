// Classifies images with an exported model.onnx in the browser (ONNX Runtime Web, wasm).
// The export guide shows this file; tests/test_web_runtime.py runs it in headless Chromium.
// Page: <script src="ort.min.js"></script><script src="classify.js"></script>, served
// over http(s) beside model.onnx and manifest.json (a browser will not load wasm from file://).
async function classify(pixels, count) {
  ort.env.wasm.numThreads = 1;
  const manifest = await (await fetch("manifest.json")).json();
  const session = await ort.InferenceSession.create("model.onnx", {
    executionProviders: ["wasm"],
  });
  const [, height, width, channels] = manifest.input.shape;  // NHWC, values in input.value_range
  const image = new ort.Tensor("float32", Float32Array.from(pixels), [count, height, width, channels]);
  const outputs = await session.run({ [session.inputNames[0]]: image });
  const scores = outputs[session.outputNames[0]].data;       // "probabilities" or "logits"
  const classes = scores.length / count;
  const results = [];
  for (let i = 0; i < count; i++) {
    const row = Array.from(scores.slice(i * classes, (i + 1) * classes));
    const best = row.indexOf(Math.max(...row));
    results.push({ class: best, label: manifest.labels ? manifest.labels[best] : null, scores: row });
  }
  return results;
}
