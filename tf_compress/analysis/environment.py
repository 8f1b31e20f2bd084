"""The software environment of a run, recorded for reproducibility."""

import importlib.metadata
import platform
import sys

__all__ = ["environment_info"]

_PACKAGES = {
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "tfmot": "tensorflow-model-optimization",
    "numpy": "numpy",
    "ai_edge_litert": "ai-edge-litert",
    "scikit_learn": "scikit-learn",
    "absl": "absl-py",
    "matplotlib": "matplotlib",
}


def _version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def environment_info(seed=None, deterministic=None):
  """Returns versions of Python and the key packages, plus the seed.

  Args:
    seed: the run's seed.
    deterministic: whether op determinism was on.

  Returns:
    A JSON-safe dict.
  """
  info = {"python": sys.version.split()[0], "platform": platform.platform()}
  for key, dist in _PACKAGES.items():
    info[key] = _version(dist)
  info["seed"] = seed
  info["deterministic"] = deterministic
  return info
