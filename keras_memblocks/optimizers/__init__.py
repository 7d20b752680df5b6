"""Optimizers the papers' recipes need and Keras does not ship."""

from keras_memblocks.optimizers.sgd_with_l2 import SGDWithL2

__all__ = ["SGDWithL2"]
