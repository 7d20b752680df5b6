"""keras-memblocks: Squeeze-and-Remember and Contextual Convolution blocks.

Importing the package registers everything it can put into a `.keras` file
(its layers and its optimizer) for deserialization, so a model trained by
`memblocks train` loads in a new process after `import keras_memblocks`.
"""

import os as _os
import sys as _sys

if _os.path.basename(_sys.argv[0]) == "memblocks":
    # The command line, not a library import: keep TensorFlow's start-up
    # lines off the console before Keras imports it (see console.py). A
    # library import leaves the user's logging alone.
    from keras_memblocks.console import quiet_tensorflow

    quiet_tensorflow()

from keras_memblocks import layers
from keras_memblocks import models
from keras_memblocks import optimizers

__version__ = "0.1.0"

__all__ = ["layers", "models", "optimizers", "__version__"]
