"""Training: recipes, the trainer, and the demo on the embedded digits."""

from keras_memblocks.utils import extras

# Built on tf.data (on every backend): without it, say what to install.
extras.require("train", "keras_memblocks.training")

from keras_memblocks.optimizers import SGDWithL2
from keras_memblocks.training.capacity_curves import CapacityCurves
from keras_memblocks.training.capacity_curves import accuracy_versus_weights
from keras_memblocks.training.checkpoints import RunFileError
from keras_memblocks.training.distributed_loop import fit_distributed
from keras_memblocks.training.plan import build_model
from keras_memblocks.training.recipes import RECIPES
from keras_memblocks.training.recipes import TrainingConfig
from keras_memblocks.training.recipes import get_recipe
from keras_memblocks.training.recipes import load_config_file
from keras_memblocks.training.results import FinishedRunError
from keras_memblocks.training.results import TrainingDivergedError
from keras_memblocks.training.run_directory import ConfigChangedError
from keras_memblocks.training.run_directory import ForeignFilesError
from keras_memblocks.training.run_directory import RunDirectoryError
from keras_memblocks.training.run_directory import RunLockedError
from keras_memblocks.training.seeds import train_seeds
from keras_memblocks.training.trainer import train

__all__ = [
    "CapacityCurves",
    "ConfigChangedError",
    "FinishedRunError",
    "ForeignFilesError",
    "RECIPES",
    "RunDirectoryError",
    "RunFileError",
    "RunLockedError",
    "SGDWithL2",
    "TrainingConfig",
    "TrainingDivergedError",
    "accuracy_versus_weights",
    "build_model",
    "fit_distributed",
    "get_recipe",
    "load_config_file",
    "train",
    "train_seeds",
]
