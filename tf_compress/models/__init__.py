"""Model builders (by registered name), model persistence and model walking."""

from tf_compress.models import zoo  # registers the built-in models
from tf_compress.models.graph import check_any_model
from tf_compress.models.graph import check_graph_model
from tf_compress.models.graph import clone_with_weights
from tf_compress.models.graph import copy_layer
from tf_compress.models.graph import find_model
from tf_compress.models.graph import graph_nodes
from tf_compress.models.graph import is_graph_model
from tf_compress.models.graph import is_model
from tf_compress.models.graph import iter_layers
from tf_compress.models.graph import unwrap
from tf_compress.models.persistence import check_model_fits
from tf_compress.models.persistence import load_model
from tf_compress.models.persistence import load_tfmot_model
from tf_compress.models.persistence import save_model
from tf_compress.models.persistence import saved_by_keras3
from tf_compress.models.registry import available_models
from tf_compress.models.registry import build_model
from tf_compress.models.registry import ModelSpec
from tf_compress.models.registry import register_model

__all__ = ["available_models", "build_model", "check_any_model",
           "check_graph_model", "check_model_fits", "clone_with_weights",
           "copy_layer", "find_model", "graph_nodes", "is_graph_model",
           "is_model", "iter_layers", "load_model", "load_tfmot_model",
           "ModelSpec", "register_model", "save_model", "saved_by_keras3",
           "unwrap", "zoo"]
