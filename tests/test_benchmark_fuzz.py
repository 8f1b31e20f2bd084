"""Corrupt models never crash the caller of `benchmark_model`.

40 seeded variants of a real int8 model: 20 truncations (from nothing to
one byte short) and 20 copies with 1-8 flipped bits, in the flatbuffer's
tables at the start, its end, or anywhere. Each must either benchmark or
raise `UserInputError`; the GPU path, which does not verify files itself,
is taken for every fourth variant. Files that pass the verifier run in
child processes, so this takes some seconds.
"""

import collections

import numpy as np
import pytest

import tf_compress as tfc
from tf_compress import benchmark
from tf_compress import export
from tf_compress.errors import UserInputError

NUM_TRUNCATED = 20
NUM_FLIPPED = 20


@pytest.fixture(scope="module")
def model_bytes():
  model = tfc.build_model("cnn", (8, 8, 1), 10, seed=0, keras_version=2)
  calibration = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1))
  return export.convert_to_tflite(
      model, "int8", representative_data=calibration.astype(np.float32),
      int8_io=True)


def _variants(data, seed=0):
  """(name, bytes) of the truncated and bit-flipped copies."""
  rng = np.random.default_rng(seed)
  n = len(data)
  lengths = [0, 1, 4, 8, 64, n // 2, n - 1]
  lengths += [int(v) for v in rng.integers(9, n - 1,
                                           NUM_TRUNCATED - len(lengths))]
  variants = [(f"truncated_{k}", data[:k]) for k in lengths]
  regions = {"head": (0, 2048), "tail": (n - 2048, n), "any": (0, n)}
  for i in range(NUM_FLIPPED):
    region = list(regions)[i % 3]
    low, high = regions[region]
    copy = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
      position = int(rng.integers(low, high))
      copy[position] ^= 1 << int(rng.integers(0, 8))
    variants.append((f"flipped_{region}_{i}", bytes(copy)))
  return variants


def test_corrupt_variants_benchmark_or_raise_user_input_error(model_bytes):
  variants = _variants(model_bytes)
  assert len(variants) == NUM_TRUNCATED + NUM_FLIPPED
  assert len({v for _, v in variants}) == len(variants)
  outcomes = collections.Counter()
  for i, (name, data) in enumerate(variants):
    try:
      report = benchmark.benchmark_model(
          data, num_threads=(1,), warmup_runs=0, num_runs=2,
          use_gpu=(i % 4 == 0), timeout_s=60)
    except UserInputError as e:
      assert str(e), name
      outcomes["rejected"] += 1
      continue
    # Whatever ran, ran to completion with real numbers.
    cpu_result = report["results"][0]
    assert cpu_result["count"] == 2, name
    if i % 4 == 0:
      assert report["results"][1]["backend"] == "gpu", name
    outcomes["benchmarked"] += 1
  # The caller is alive; both outcomes occurred (the test can fail).
  assert outcomes["rejected"] + outcomes["benchmarked"] == len(variants)
  assert outcomes["rejected"] >= NUM_TRUNCATED  # every truncation
  assert outcomes["benchmarked"] >= 1
  # And the original still benchmarks after all that.
  report = benchmark.benchmark_model(model_bytes, num_runs=2)
  assert report["results"][0]["count"] == 2
