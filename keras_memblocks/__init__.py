"""keras-memblocks: Squeeze-and-Remember and Contextual Convolution blocks.

Importing the package registers every layer for `.keras` deserialization.
"""

from keras_memblocks import layers
from keras_memblocks import models

__version__ = "0.1.0"

__all__ = ["layers", "models", "__version__"]
