"""The software environment of a run, recorded for reproducibility."""

import importlib.metadata
import os
import platform
import sys

__all__ = ["environment_info", "cpu_info", "CPU_FLAGS"]

# The instruction-set flags that decide whether int8 beats float32 on
# XNNPACK: VNNI/AMX (x86) and dot-product/i8mm (ARM) make int8 fast.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
             "amx_tile", "asimddp", "i8mm")
# /proc/cpuinfo's ARM names and what they are called here.
_ARM_NAMES = {"asimddp": "dotprod", "i8mm": "i8mm"}

_PACKAGES = {
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "tfmot": "tensorflow-model-optimization",
    "numpy": "numpy",
    "ai_edge_litert": "ai-edge-litert",
    "scikit_learn": "scikit-learn",
    "scipy": "scipy",
    "absl": "absl-py",
    "matplotlib": "matplotlib",
}


def _version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def _parse_cpuinfo(text):
  model, flags = None, set()
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip().lower()
    if key in ("model name", "hardware", "cpu model") and model is None:
      model = value.strip() or None
    elif key in ("flags", "features"):
      flags |= set(value.split())
  return model, flags


def cpu_info(cpuinfo_text=None):
  """The CPU model and its int8-relevant instruction-set flags.

  Args:
    cpuinfo_text: /proc/cpuinfo's text; read from the machine when None.

  Returns:
    Dict: `model` (None when unknown), `machine` (`platform.machine()`),
    `flags` (those of `CPU_FLAGS` present, ARM's `asimddp` named
    `dotprod`), `vnni` (whether an int8 dot-product extension is present:
    avx512_vnni, avx_vnni, amx_int8, dotprod or i8mm) and `source`.
  """
  source = "argument"
  if cpuinfo_text is None:
    source = "/proc/cpuinfo"
    try:
      with open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpuinfo_text = handle.read()
    except OSError:
      cpuinfo_text, source = "", "unavailable"
  model, flags = _parse_cpuinfo(cpuinfo_text)
  present = [_ARM_NAMES.get(f, f) for f in CPU_FLAGS if f in flags]
  vnni = any(f in present for f in ("avx512_vnni", "avx_vnni", "amx_int8",
                                    "dotprod", "i8mm"))
  return {"model": model or platform.processor() or None,
          "machine": platform.machine(), "flags": present,
          "vnni": bool(vnni), "source": source}


def environment_info(seed=None, deterministic=None):
  """Returns versions of Python and the key packages, plus the seed.

  Args:
    seed: the run's seed.
    deterministic: whether op determinism was on.

  Returns:
    A JSON-safe dict: the versions, `seed`, `deterministic`, `cpu`
    (`cpu_info()`) and `cpu_count`.
  """
  info = {"python": sys.version.split()[0], "platform": platform.platform()}
  for key, dist in _PACKAGES.items():
    info[key] = _version(dist)
  info["seed"] = seed
  info["deterministic"] = deterministic
  # Latency figures cannot be read without the instruction set they ran on.
  info["cpu"] = cpu_info()
  info["cpu_count"] = os.cpu_count()
  return info
