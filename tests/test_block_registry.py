import keras
import pytest

from keras_memblocks.layers import ContextualConvBlock2D
from keras_memblocks.layers import SqueezeAndRemember2D
from keras_memblocks.layers import get_block
from keras_memblocks.layers import register_block

pytestmark = pytest.mark.every_backend


@pytest.mark.parametrize(
    "name,cls",
    [
        ("sr", SqueezeAndRemember2D),
        ("SR", SqueezeAndRemember2D),
        ("squeeze_and_remember", SqueezeAndRemember2D),
        ("cc", ContextualConvBlock2D),
        ("contextual_conv", ContextualConvBlock2D),
    ],
)
def test_names_resolve_with_kwargs(name, cls):
    kwargs = {"num_memory_blocks": 3} if cls is SqueezeAndRemember2D else {"variant": "full"}
    block = get_block(name, **kwargs)
    assert type(block) is cls
    assert block.get_config()[next(iter(kwargs))] == next(iter(kwargs.values()))


def test_class_instance_and_none():
    assert type(get_block(ContextualConvBlock2D, variant="scalar")) is ContextualConvBlock2D
    instance = SqueezeAndRemember2D()
    assert get_block(instance) is instance
    assert get_block(None) is None


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown block 'se_block'.*cc.*sr"):
        get_block("se_block")


@pytest.mark.parametrize("bad", [42, keras.layers.Dense, object()])
def test_unresolvable_values_raise(bad):
    if bad is keras.layers.Dense:
        assert isinstance(get_block(bad, units=2), keras.layers.Dense)
        return
    with pytest.raises(ValueError, match="Cannot resolve block"):
        get_block(bad)


def test_arguments_with_instance_or_none_raise():
    with pytest.raises(ValueError, match="takes no further arguments"):
        get_block(SqueezeAndRemember2D(), num_memory_blocks=2)
    with pytest.raises(ValueError, match="block=None takes no arguments"):
        get_block(None, variant="full")


def test_register_block():
    register_block("identity_for_test", keras.layers.Identity)
    assert isinstance(get_block("identity_for_test"), keras.layers.Identity)
    with pytest.raises(ValueError, match="Layer subclass"):
        register_block("bad", int)
