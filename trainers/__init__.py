"""How a run happens: recipes, the Trainer, callbacks, checkpoints, evaluation."""

from tfgen.trainers import recipes
from tfgen.trainers.callbacks import CheckpointEveryEpoch, SampleGrid, StopOnNonFinite
from tfgen.trainers.checkpoint import checkpoint_for
from tfgen.trainers.evaluate import evaluate, parzen
from tfgen.trainers.recipes import Recipe, build_model
from tfgen.trainers.trainer import Trainer, make_strategy

__all__ = ["CheckpointEveryEpoch", "Recipe", "SampleGrid", "StopOnNonFinite", "Trainer", "build_model",
           "checkpoint_for", "evaluate", "make_strategy", "parzen", "recipes"]
