import pytest

from keras_memblocks.demo import run_demo


@pytest.mark.runs_first
def test_demo_trains_compares_and_exports(tmp_path):
    # One epoch: the demo's wiring, not its accuracies (make demo runs 15).
    results = run_demo(tmp_path, epochs=1, verbose=0)
    assert len(results) == 4
    table = (tmp_path / "demo.md").read_text()
    for row in (
        "VGG-like (CC paper), standard",
        "reduced CC",
        "SR after module 3",
        "| tflite int8 |",
        "| onnx |",
        "| saved_model |",
    ):
        assert row in table
    assert (tmp_path / "export" / "int8" / "model_int8.tflite").exists()
    assert (tmp_path / "export" / "float32" / "manifest.json").exists()
