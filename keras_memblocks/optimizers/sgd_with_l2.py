"""SGD with PyTorch's (coupled) weight decay."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_memblocks")
class SGDWithL2(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient, before momentum.

    This is `torch.optim.SGD(weight_decay=...)`, which the papers trained
    with: `g += l2 * w; buf = momentum * buf + g; w -= lr * buf`. Keras'
    own `weight_decay` argument is decoupled (`w -= lr * wd * w` outside
    the momentum), a different optimiser, hence this subclass.

    Args:
        learning_rate: as `keras.optimizers.SGD`.
        momentum: as `keras.optimizers.SGD`.
        nesterov: as `keras.optimizers.SGD`.
        l2: the weight decay coefficient (the papers: 1e-4 or 5e-4).
        **kwargs: other `keras.optimizers.SGD` arguments.

    Examples:
        One step: the decay enters the gradient:

        >>> import keras, numpy as np
        >>> from keras_memblocks.optimizers import SGDWithL2
        >>> weight = keras.Variable([1.0])
        >>> optimizer = SGDWithL2(learning_rate=0.1, momentum=0.9, l2=0.5)
        >>> optimizer.apply([np.zeros(1, "float32")], [weight])
        >>> round(float(weight.numpy()[0]), 6)  # 1 - 0.1 * (0 + 0.5 * 1)
        0.95
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, **kwargs):
        super().__init__(
            learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs
        )
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2!r}")
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + ops.cast(self.l2, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}
