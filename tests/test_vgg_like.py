import numpy as np
import pytest

from keras_memblocks.layers import VARIANT_NAMES
from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.models import vgg_like
from tests import model_checks

pytestmark = pytest.mark.every_backend


def test_paper_parameter_counts_cifar100_width32():
    # CC paper Table 3: 1.3M without blocks, 1.5M with reduced CC blocks.
    assert vgg_like("cifar100", width=32).count_params() == 1_316_356
    assert (
        vgg_like(
            "cifar100", width=32, blocks={"block": "cc", "after": "conv", "variant": "reduced"}
        ).count_params()
        == 1_511_428
    )


@pytest.mark.parametrize(
    "dataset,width,last_pool",
    # Table 1's "output of last pool at 48 channels" column, plus width 1.
    [
        ("mnist", 48, (2, 2, 192)),
        ("cifar10", 48, (2, 2, 384)),
        ("cifar100", 48, (2, 2, 384)),
        ("mnist", 1, (2, 2, 4)),
        ("cifar10", 1, (2, 2, 8)),
    ],
)
def test_layout(dataset, width, last_pool):
    model = vgg_like(dataset, width=width)
    stages = 2 if dataset == "mnist" else 4
    assert model.get_layer(f"stage{stages}_pool").output.shape[1:] == last_pool
    convs = [n for n in model_checks.layer_names(model) if "_conv" in n]
    assert len(convs) == {"mnist": 2, "cifar10": 4, "cifar100": 8}[dataset]
    assert model.output.shape == (None, 100 if dataset == "cifar100" else 10)


@pytest.mark.parametrize(
    "block,kwargs",
    [("cc", dict(variant=v, ch_units=(4, 2))) for v in VARIANT_NAMES]
    + [
        ("sr", dict(num_memory_blocks=2)),
        ("se", {}),
        ("cbam", {}),
        (ContextualConvBlock2D, dict(variant="scalar")),
    ],
)
def test_block_after_every_conv(block, kwargs):
    model = vgg_like("cifar10", width=4, blocks={"block": block, "after": "conv", **kwargs})
    names = model_checks.layer_names(model)
    convs = [n for n in names if n.endswith(("_conv1", "_conv2"))]
    for conv in convs:
        after = names[names.index(conv) + 1]
        assert after == f"{conv}_{block if isinstance(block, str) else block.__name__.lower()}"
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert np.allclose(model.predict(x, verbose=0).sum(axis=1), 1.0, atol=1e-5)


def test_round_trip_and_jit(tmp_path):
    model = vgg_like(
        "cifar100", width=4, blocks={"block": "cc", "after": "conv", "variant": "reduced"}
    )
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    model_checks.check_save_load_round_trip(model, x, tmp_path)
    model_checks.check_jit_train_step(model, x, np.arange(4))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'.*'mnist'"):
        vgg_like("imagenet", width=8)
    with pytest.raises(ValueError, match=r"width.*>= 1"):
        vgg_like("mnist", width=0)
    with pytest.raises(ValueError, match="one layer instance cannot sit at several places"):
        vgg_like("mnist", width=4, blocks={"block": ContextualConvBlock2D(), "after": "conv"})
    with pytest.raises(ValueError, match="Unknown block 'xx'"):
        vgg_like("mnist", width=4, blocks={"block": "xx", "after": "conv"})
