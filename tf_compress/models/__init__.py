"""Model builders (by registered name) and model persistence."""

from tf_compress.models import zoo  # registers the built-in models
from tf_compress.models.persistence import check_model_fits
from tf_compress.models.persistence import load_model
from tf_compress.models.persistence import save_model
from tf_compress.models.registry import available_models
from tf_compress.models.registry import build_model
from tf_compress.models.registry import ModelSpec
from tf_compress.models.registry import register_model

__all__ = ["available_models", "build_model", "check_model_fits",
           "load_model", "ModelSpec", "register_model", "save_model", "zoo"]
