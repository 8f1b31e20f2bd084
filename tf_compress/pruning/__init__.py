"""Pruning: magnitude pruning (tfmot for tf_keras, native for Keras 3), slicing.

The engine follows the model: a tf_keras model is pruned with tfmot's
wrappers, a Keras 3 model with our own masks (`keras3_pruning`), through the
same functions and the same `PruningCallback`.

    from tf_compress import pruning

    config = pruning.PruningConfig(target_sparsity=0.8, scope="global")
    pruned = pruning.prune_model(model, config, steps_per_epoch=40)
    pruned.compile(...)
    pruned.fit(data, epochs=4, callbacks=[pruning.PruningCallback()])
    export = pruning.strip_pruning(pruned)
"""

from tf_compress.pruning.wrappers import find_pruning_wrappers
from tf_compress.pruning.pruning_callbacks import PruningCallback
from tf_compress.pruning.pruning_config import parse_block_size
from tf_compress.pruning.pruning_config import parse_m_by_n
from tf_compress.pruning.pruning_config import PruningConfig
from tf_compress.pruning.global_pruning import global_masks
from tf_compress.pruning.keras3_pruning import find_pruner
from tf_compress.pruning.keras3_pruning import Keras3Pruner
from tf_compress.pruning.keras3_pruning import resume_keras3_pruning
from tf_compress.pruning.magnitude import load_pruned_model
from tf_compress.pruning.magnitude import prune_model
from tf_compress.pruning.magnitude import pruning_custom_objects
from tf_compress.pruning.magnitude import selected_layers
from tf_compress.pruning.magnitude import strip_pruning
from tf_compress.pruning.magnitude import takes_blocks
from tf_compress.pruning import schedules
from tf_compress.pruning.schedules import make_pruning_schedule
from tf_compress.pruning.sparsity_stats import format_sparsity_table
from tf_compress.pruning.sparsity_stats import overall_sparsity
from tf_compress.pruning.sparsity_stats import sparsity_table
from tf_compress.pruning.slicing import channel_scores
from tf_compress.pruning.slicing import CRITERIA
from tf_compress.pruning.slicing import mask_channels
from tf_compress.pruning.slicing import slice_masked_model
from tf_compress.pruning.slicing import slice_model
from tf_compress.pruning.slicing import SliceResult
from tf_compress.pruning.slicing_callback import SlicingCallback


from tf_compress._tfmot import register_extension

register_extension("tf_compress.pruning.tfmot_schedules")


def __getattr__(name):
  # tfmot's schedule subclasses: imported (with tfmot) on first use.
  if name in ("GlobalSparsity", "MbyNSparsity"):
    return getattr(schedules, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "parse_block_size", "takes_blocks",
    # Magnitude pruning (tfmot).
    "find_pruning_wrappers", "format_sparsity_table", "global_masks",
    "GlobalSparsity", "load_pruned_model", "make_pruning_schedule",
    "MbyNSparsity", "overall_sparsity", "parse_m_by_n", "prune_model",
    "PruningCallback", "PruningConfig", "pruning_custom_objects",
    "selected_layers", "sparsity_table", "strip_pruning",
    # Magnitude pruning of Keras 3 models (native).
    "find_pruner", "Keras3Pruner", "resume_keras3_pruning",
    # Structured slicing.
    "channel_scores", "CRITERIA", "mask_channels", "slice_masked_model",
    "slice_model", "SliceResult", "SlicingCallback",
]
