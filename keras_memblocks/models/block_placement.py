"""Where a builder puts blocks: the one convention every builder shares.

Every builder takes `blocks`: one placement or a list of them. A placement
says which block, where, and with which arguments, in the words of
`insert_blocks(model, block, after, **block_args)`:

    {"block": "cc", "after": "conv", "variant": "reduced"}   # CC paper
    {"block": "sr", "after": 3, "num_memory_blocks": 10}     # SR paper
    {"block": "se", "after": "residual"}                     # SE / CBAM

- `block`: a name `get_block` resolves (`"sr"`, `"cc"`, `"se"`, `"cbam"`,
  ...) or a layer class.
- `after`: a module number (a list of them: one block after each), or a
  site the builder offers: `"conv"` (after every convolution, after its
  activation) or `"residual"` (on every residual branch, before the
  addition).
- every other key: an argument of the block.

Plain dicts keep recipes, config files and `--model-args` in JSON;
`BlockPlacement` is the same placement as a frozen dataclass. A block is
named `"{where}_{block}"`: `module3_sr`, `stage1_conv1_cc`, `module2_block1_se`.
"""

import dataclasses

import keras

from keras_memblocks.layers import get_block
from keras_memblocks.layers.block_registry import BLOCKS

SITES = ("conv", "residual")


@dataclasses.dataclass(frozen=True)
class BlockPlacement:
    """One kind of block, where it goes, and its arguments.

    Examples:
        >>> from keras_memblocks.models import BlockPlacement, cifar_resnet
        >>> sr = BlockPlacement("sr", after=3, args={"num_memory_blocks": 10})
        >>> cifar_resnet(18, blocks=sr, width=8).get_layer("module3_sr").num_memory_blocks
        10
    """

    block: object
    after: object
    args: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, placement):
        if "block" not in placement or "after" not in placement:
            raise ValueError(
                "A block placement needs 'block' and 'after', e.g. "
                "{'block': 'sr', 'after': 3, 'num_memory_blocks': 10}. "
                f"Received: {placement!r}"
            )
        args = {k: v for k, v in placement.items() if k not in ("block", "after")}
        return cls(placement["block"], placement["after"], args)

    @property
    def suffix(self):
        name = self.block if isinstance(self.block, str) else self.block.__name__
        return name.lower()

    def layer(self, where):
        """A new block for the place named `where`."""
        return get_block(self.block, name=f"{where}_{self.suffix}", **self.args)


class Placements:
    """A builder's validated `blocks`, applied where the builder asks.

    Args:
        blocks: `None`, a placement (dict or `BlockPlacement`) or a list.
        builder: the builder's name, for error messages.
        num_modules: the builder's modules are numbered 1..num_modules.
        sites: the named sites the builder offers (a subset of `SITES`).
    """

    def __init__(self, blocks, builder, num_modules, sites):
        if blocks is None:
            blocks = []
        elif isinstance(blocks, (dict, BlockPlacement)):
            blocks = [blocks]
        elif not isinstance(blocks, (list, tuple)):
            raise ValueError(
                "`blocks` must be None, a placement such as "
                "{'block': 'cc', 'after': 'conv'} or a list of them. "
                f"Received: blocks={blocks!r}"
            )
        self._placements = []
        for placement in blocks:
            if isinstance(placement, dict):
                placement = BlockPlacement.from_dict(placement)
            elif not isinstance(placement, BlockPlacement):
                raise ValueError(
                    "Each entry of `blocks` must be a dict or a BlockPlacement. "
                    f"Received: {placement!r}"
                )
            modules = self._check(placement, builder, num_modules, sites)
            self._placements.append((placement, modules))
        names = [
            (p.suffix, where)
            for p, modules in self._placements
            for where in (modules or (p.after,))
        ]
        if len(set(names)) != len(names):
            raise ValueError(
                f"{builder}: `blocks` places the same block twice at the same place "
                f"({names}); its layers would share names."
            )

    @staticmethod
    def _check(placement, builder, num_modules, sites):
        block, after = placement.block, placement.after
        if isinstance(block, keras.layers.Layer) or not isinstance(block, (str, type)):
            raise ValueError(
                "A placement's 'block' must be a block name or a layer class (one layer "
                f"instance cannot sit at several places). Received: {block!r}"
            )
        where = f"module numbers 1..{num_modules}" + "".join(f" or {s!r}" for s in sites)
        if isinstance(after, str):
            if after not in sites:
                raise ValueError(
                    f"{builder} places blocks after {where}. Received: after={after!r}"
                )
            modules = ()
        else:
            modules = (after,) if isinstance(after, int) else tuple(after)
            if not modules or any(
                isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= num_modules
                for m in modules
            ):
                raise ValueError(
                    f"{builder} places blocks after {where}. Received: after={after!r}"
                )
        if isinstance(block, str) and block.lower() not in BLOCKS:
            get_block(block)  # its error lists the known names
        try:
            get_block(block, **placement.args)  # bad arguments fail here, by name
        except (TypeError, ValueError) as error:
            raise ValueError(f"Bad arguments for the {placement.suffix!r} block: {error}") from None
        return modules

    def __bool__(self):
        return bool(self._placements)

    @property
    def suffix(self):
        """`"_cc"`, `"_se_sr"`, ... for model names; `""` without blocks."""
        return "".join(f"_{p.suffix}" for p, _ in self._placements)

    def after_module(self, x, module, prefix):
        """`x` through the blocks placed after `module` (named `{prefix}_{block}`)."""
        for placement, modules in self._placements:
            if module in modules:
                x = placement.layer(prefix)(x)
        return x

    def at(self, site, x, name):
        """`x` through the blocks placed at every `site` (named `{name}_{block}`)."""
        for placement, _ in self._placements:
            if placement.after == site:
                x = placement.layer(name)(x)
        return x
