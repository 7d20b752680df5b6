"""The standard battery every layer of the package must pass.

`run_layer_battery(layer_cls, init_kwargs, input_shape, tmp_path)` checks:

1. config round trip, with every `__init__` argument present in the config;
2. symbolic and eager calls agree with `compute_output_shape`;
3. one `fit` step changes every trainable weight (gradients reach all);
4. `mixed_float16`: float16 outputs, float32 weights, close to float32;
5. `jit_compile=True` (TensorFlow and JAX): the model really compiles with
   XLA (its compiler IR is produced) and gives the outputs of the eager model;
6. `.keras` save -> load in another Python process that has imported only
   `keras` and `keras_memblocks` (`safe_mode=True`, no `custom_objects`:
   importing the package is all it takes), same outputs. One such loader
   process per test worker loads every file it is sent, so the suite does not
   pay an interpreter start and a Keras import per layer configuration.

Each check is also callable on its own. The battery runs on whichever Keras
backend is active and imports no TensorFlow unless that is the backend, so
`make test` runs it on TensorFlow and, in a TensorFlow-free environment, on JAX
(and `make test-torch` on PyTorch).
"""

import atexit
import inspect
import json
import select
import subprocess
import sys
import textwrap

import keras
import numpy as np

BATCH = 4


def random_inputs(input_shape, batch=BATCH, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *input_shape)).astype("float32")


def as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def functional_model(layer_cls, init_kwargs, input_shape, dtype=None):
    inputs = keras.Input(input_shape)
    kwargs = dict(init_kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    outputs = layer_cls(**kwargs)(inputs)
    return keras.Model(inputs, outputs)


def randomize_weights(model, seed=0, scale=0.3, keep_initial=True):
    """Moves every weight off its initial value, deterministically.

    Zero-initialised weights (SR memories, CC coefficient layers) make some
    gradients vanish at initialisation by design; the battery tests that
    gradients reach every weight from a generic state. With
    `keep_initial=False` every weight is drawn afresh, `scale * N(0, 1)`
    (the NumPy-reference tests: no weight keeps a special value).
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        noise = scale * rng.normal(size=value.shape)
        weight.assign((value + noise) if keep_initial else noise.astype("float32"))


def gradients(loss_fn, inputs, variables):
    """d loss_fn(inputs) / d (inputs, *variables) as NumPy, by the backend's
    own autodiff (GradientTape, jax.grad, torch.autograd)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.constant(inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = loss_fn(inputs)
        grads = tape.gradient(loss, [inputs] + [v.value for v in variables])
    elif backend == "jax":
        import jax

        def pure(inputs, values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn(inputs)

        values = [v.value for v in variables]
        input_grad, variable_grads = jax.grad(pure, argnums=(0, 1))(
            jax.numpy.asarray(inputs), values
        )
        grads = [input_grad, *variable_grads]
    elif backend == "torch":
        import torch

        inputs = torch.tensor(np.asarray(inputs), requires_grad=True)
        loss = loss_fn(inputs)
        grads = torch.autograd.grad(loss, [inputs] + [v.value for v in variables])
    else:
        raise NotImplementedError(backend)
    return [keras.ops.convert_to_numpy(g) for g in grads]


def weights_by_name(layer):
    """`{weight name: NumPy array}`, what the NumPy references take."""
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}


def check_config_round_trip(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    init_args = [
        name
        for name, p in inspect.signature(layer_cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    missing = [name for name in init_args if name not in config]
    assert not missing, f"get_config lacks __init__ arguments {missing}"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    # The config is plain data (JSON-serialisable) for the .keras format.
    keras.saving.serialize_keras_object(layer)
    return config


def check_symbolic_and_eager(layer_cls, init_kwargs, input_shape):
    layer = layer_cls(**init_kwargs)
    symbolic = as_list(layer(keras.Input(input_shape)))
    expected = layer.compute_output_shape((None, *input_shape))
    if not isinstance(expected[0], (tuple, list)):
        expected = [expected]  # one output
    for tensor, shape in zip(symbolic, expected):
        assert tuple(tensor.shape) == tuple(shape)
    x = random_inputs(input_shape)
    eager = as_list(layer(x))
    for tensor, shape in zip(eager, expected):
        assert tuple(tensor.shape) == (BATCH, *shape[1:])
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(tensor)))


def check_fit_updates_every_weight(layer_cls, init_kwargs, input_shape):
    keras.utils.set_random_seed(0)
    model = functional_model(layer_cls, init_kwargs, input_shape)
    randomize_weights(model)
    x = random_inputs(input_shape)
    targets = [
        np.random.default_rng(1).normal(size=(BATCH, *o.shape[1:])) for o in as_list(model.outputs)
    ]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse"] * len(targets))
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if not before:  # a weightless layer (DropBlock): the step must just run
        return
    unchanged = [
        w.path
        for w, old in zip(model.trainable_weights, before)
        if np.array_equal(keras.ops.convert_to_numpy(w), old)
    ]
    assert not unchanged, f"one fit step left {unchanged} unchanged"


def check_mixed_precision(layer_cls, init_kwargs, input_shape):
    keras.utils.set_random_seed(0)
    full = functional_model(layer_cls, init_kwargs, input_shape)
    randomize_weights(full, scale=0.1)
    mixed = functional_model(layer_cls, init_kwargs, input_shape, dtype="mixed_float16")
    mixed.set_weights(full.get_weights())
    for weight in mixed.weights:
        assert weight.dtype == "float32", weight.path
    x = random_inputs(input_shape)
    expected = as_list(full(x))
    got = as_list(mixed(x))
    assert keras.backend.standardize_dtype(got[0].dtype) == "float16"
    for e, g in zip(expected, got):
        e, g = keras.ops.convert_to_numpy(e), keras.ops.convert_to_numpy(g)
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g.astype("float32"), e, rtol=2e-2, atol=2e-2)


def check_jit_compile(layer_cls, init_kwargs, input_shape):
    keras.utils.set_random_seed(0)
    model = functional_model(layer_cls, init_kwargs, input_shape)
    randomize_weights(model, scale=0.1)
    x = random_inputs(input_shape)
    expected = [keras.ops.convert_to_numpy(o) for o in as_list(model(x))]
    backend = keras.backend.backend()
    # An explicit XLA function: producing its IR proves there is no fallback.
    if backend == "tensorflow":
        import tensorflow as tf

        xla_call = tf.function(lambda t: model(t), jit_compile=True)
        ir = xla_call.experimental_get_compiler_ir(tf.constant(x))(stage="hlo")
        assert "HloModule" in ir
        got = as_list(xla_call(tf.constant(x)))
    elif backend == "jax":
        import jax

        xla_call = jax.jit(lambda t: model(t))
        ir = xla_call.lower(x).as_text()  # StableHLO, for XLA
        assert "func.func public @main" in ir
        got = as_list(xla_call(x))
    else:
        raise NotImplementedError(f"no XLA check for the {backend} backend")
    for e, g in zip(expected, got):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(g), e, rtol=1e-4, atol=1e-5, equal_nan=False
        )
    # And the user-facing path: compile(jit_compile=True) + a train step.
    model.compile(optimizer="sgd", loss=["mse"] * len(expected), jit_compile=True)
    model.train_on_batch(x, expected)


# Reads `model.keras inputs.npy outputs.npz` lines; answers each with one JSON line.
_LOADER_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import traceback

    import numpy as np
    import keras
    import keras_memblocks  # registers the layers; nothing else is needed

    for line in sys.stdin:
        model_path, inputs_path, outputs_path = json.loads(line)
        try:
            model = keras.saving.load_model(model_path)  # safe_mode=True default
            outputs = model(np.load(inputs_path))
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            np.savez(outputs_path, *[keras.ops.convert_to_numpy(o) for o in outputs])
            print(json.dumps({"ok": True}), flush=True)
        except Exception:
            print(json.dumps({"ok": False, "error": traceback.format_exc()}), flush=True)
    """
)
_loader_process = None


def _loader():
    """This worker's loader process, started on first use (again if it died)."""
    global _loader_process
    if _loader_process is None or _loader_process.poll() is not None:
        _loader_process = subprocess.Popen(
            [sys.executable, "-c", _LOADER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # TensorFlow's start-up lines; errors come as JSON
            text=True,
        )
        atexit.register(_loader_process.kill)
    return _loader_process


def load_in_another_process(model_path, inputs_path, outputs_path):
    """Loads `model_path` in the loader process and writes its outputs on `inputs_path`."""
    loader = _loader()
    loader.stdin.write(json.dumps([str(model_path), str(inputs_path), str(outputs_path)]) + "\n")
    loader.stdin.flush()
    if not select.select([loader.stdout], [], [], 300)[0]:
        loader.kill()
        raise AssertionError(f"the loader process did not answer in 300 s for {model_path}")
    answer = loader.stdout.readline()
    assert answer, f"the loader process ended (exit code {loader.wait()})"
    answer = json.loads(answer)
    assert answer["ok"], answer["error"][-3000:]


def check_save_load_fresh_process(layer_cls, init_kwargs, input_shape, tmp_path):
    keras.utils.set_random_seed(0)
    model = functional_model(layer_cls, init_kwargs, input_shape)
    randomize_weights(model, scale=0.1)
    x = random_inputs(input_shape)
    expected = [keras.ops.convert_to_numpy(o) for o in as_list(model(x))]
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    np.save(tmp_path / "inputs.npy", x)
    load_in_another_process(model_path, tmp_path / "inputs.npy", tmp_path / "outputs.npz")
    loaded = np.load(tmp_path / "outputs.npz")
    got = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6, equal_nan=False)


def run_layer_battery(layer_cls, init_kwargs, input_shape, tmp_path):
    """Runs every check of the battery on `layer_cls(**init_kwargs)`."""
    check_config_round_trip(layer_cls, init_kwargs)
    check_symbolic_and_eager(layer_cls, init_kwargs, input_shape)
    check_fit_updates_every_weight(layer_cls, init_kwargs, input_shape)
    check_mixed_precision(layer_cls, init_kwargs, input_shape)
    if keras.backend.backend() in ("tensorflow", "jax"):
        # Keras' jit_compile on PyTorch is torch.compile, not XLA.
        check_jit_compile(layer_cls, init_kwargs, input_shape)
    check_save_load_fresh_process(layer_cls, init_kwargs, input_shape, tmp_path)
