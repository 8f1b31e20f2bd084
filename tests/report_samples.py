"""A hand-made report.json dict for the report tests (no training needed).

Its exports (top-1, gzip bytes) are chosen so that the Pareto-optimal ones
are known by hand: baseline/int8 (0.95, 300), pruned/float32 (0.96, 400)
and pruned/int8 (0.94, 120). baseline/float32 (0.95, 1000) loses to
baseline/int8, small/int8 (0.90, 150) and small/float32 (0.90, 500) to
pruned/int8.
"""

import copy

# (variant, mode) of the hand-made Pareto-optimal exports.
PARETO = {("baseline", "int8"), ("pruned", "float32"), ("pruned", "int8")}
CLASSES = ["zero", "one", "two"]


def _export(mode, top1, gzip_bytes, per_class=None, change=None):
  entry = {"mode": mode, "path": f"x_{mode}.tflite", "bytes": 2 * gzip_bytes,
           "gzip_bytes": gzip_bytes, "tflite_top1": top1, "agreement": 0.99,
           "max_abs_diff": 0.01,
           "latency": {"cpu": [{"backend": "cpu", "p50_ms": 0.05}]}}
  if per_class is not None:
    entry["per_class_accuracy"] = per_class
  if change is not None:
    entry["per_class_change"] = change
  return entry


def _variant(name, top1, exports, sparsity=0.0, per_layer=None, change=None,
             params=1000):
  entry = {"name": name, "top1": top1, "topk": 1.0, "top_k": 3,
           "balanced_accuracy": top1 - 0.01, "macro_f1": top1 - 0.02,
           "ece": 0.03, "per_class_accuracy": [top1, top1, top1],
           "confusion_matrix": [[10, 1, 0], [0, 9, 2], [1, 0, 11]],
           "params": params, "nonzero_params": int(params * (1 - sparsity)),
           "keras_bytes": 9000, "model_path": f"{name}.keras",
           "sparsity": {"overall": sparsity, "per_layer": per_layer or []},
           "tflite": exports}
  if change is not None:
    entry["per_class_change"] = change
  return entry


def sample_report():
  """A schema-1 report with 3 variants x 2 exports, sweeps and history."""
  fell = {"delta": [-0.05, 0.0, -0.03], "worst_class": 0, "worst_delta": -0.05,
          "threshold": 0.02, "classes_below_threshold": [0, 2]}
  steady = {"delta": [0.0, 0.01, None], "worst_class": 1, "worst_delta": 0.01,
            "threshold": 0.02, "classes_below_threshold": []}
  export_fell = {"delta": [0.0, -0.1, 0.0], "worst_class": 1,
                 "worst_delta": -0.1, "threshold": 0.02,
                 "classes_below_threshold": [1]}
  layers = [{"layer": "fc1", "weights": 100, "zeros": 50, "sparsity": 0.5},
            {"layer": "logits", "weights": 30, "zeros": 15, "sparsity": 0.5}]
  variants = [
      _variant("baseline", 0.95, [_export("float32", 0.95, 1000),
                                  _export("int8", 0.95, 300)]),
      _variant("pruned", 0.96, [
          _export("float32", 0.96, 400),
          _export("int8", 0.94, 120, per_class=[0.9, 0.8, 1.0],
                  change=export_fell)], sparsity=0.5, per_layer=layers,
               change=steady),
      _variant("small", 0.90, [_export("float32", 0.90, 500),
                               _export("int8", 0.90, 150)], change=fell,
               params=400),
  ]
  sweep = [{"level": level, "variant": f"pruned_{int(level * 100)}",
            "params": 1000, "nonzero_params": int(1000 * (1 - level)),
            "top1": 0.96 - level / 10, "topk": 1.0,
            "balanced_accuracy": 0.95 - level / 10, "macro_f1": 0.9,
            "gzip_bytes": {"float32": int(1000 * (1 - level)) + 50,
                           "int8": int(300 * (1 - level)) + 20},
            "p50_ms": {"float32": 0.05, "int8": None}}
           for level in (0.25, 0.5, 0.75)]
  slices = [{"level": 0.5, "variant": "sliced_50", "params": 500,
             "nonzero_params": 500, "top1": 0.93, "topk": 1.0,
             "gzip_bytes": {"float32": 480}, "p50_ms": {"float32": 0.03}}]
  history = {"baseline": {"loss": [1.0, 0.5], "accuracy": [0.6, 0.9],
                          "val_loss": [1.1, 0.6], "val_accuracy": [0.5, 0.85]},
             "pruned": {"loss": [0.4], "accuracy": [0.92]}}
  return copy.deepcopy({
      "schema_version": 1,
      "dataset": {"name": "toy", "source_kind": "npz", "num_samples": 300,
                  "feature_shape": [4, 4, 1], "input_shape": [4, 4, 1],
                  "num_classes": 3, "class_names": CLASSES,
                  "per_class_counts": [200, 60, 40], "imbalance_ratio": 5.0,
                  "empty_classes": [],
                  "suggested_class_weights": {"0": 0.5, "1": 1.67, "2": 2.5},
                  "channel_stats": {"count": 4800, "mean": [0.4],
                                    "std": [0.2]},
                  "value_min": 0.0, "value_max": 1.0,
                  "splits": {"train": 200, "validation": 40, "test": 60},
                  "split_class_counts": {"train": [133, 40, 27],
                                         "validation": [27, 8, 5],
                                         "test": [40, 12, 8]},
                  "channel_stats_units": "raw",
                  "image_sizes": {"count": 300,
                                  "height": {"min": 4, "p10": 4, "median": 4,
                                             "mean": 4.0, "p90": 4, "max": 4},
                                  "width": {"min": 4, "p10": 4, "median": 4,
                                            "mean": 4.0, "p90": 4, "max": 4},
                                  "most_common": [{"height": 4, "width": 4,
                                                   "count": 300}],
                                  "aspect_ratio": 1.0,
                                  "recommended_size": [8, 8]}},
      "variants": variants,
      "headline_metrics": ["balanced_accuracy", "macro_f1"],
      "sweeps": {"sparsity": sweep, "slice": slices},
      "history": history,
      "config": {"dataset": "toy.npz", "model": "mlp", "epochs": 2,
                 "seed": 7, "qat": False, "export": ["float32", "int8"],
                 "prune_sparsity": 0.5, "image_size": None},
      "command": ["/repo/tf_compress/train.py", "--dataset=toy.npz",
                  "--prune_sparsity=0.5"],
      "environment": {"python": "3.11.7", "tensorflow": "2.21.0", "seed": 7,
                      "deterministic": False},
      "artifacts": {}, "timing": {},
  })


def sample_tuning():
  """A tuning.json dict (the tuner's schema) with two Pareto trials."""
  return {
      "objectives": ["top1", "gzip_bytes"],
      "directions": ["maximize", "minimize"],
      "trials": [
          {"number": 0, "state": "COMPLETE", "params": {"sparsity": 0.5},
           "values": {"top1": 0.95, "gzip_bytes": 300}, "feasible": True},
          {"number": 1, "state": "COMPLETE", "params": {"sparsity": 0.8},
           "values": {"top1": 0.93, "gzip_bytes": 150}, "feasible": True},
          {"number": 2, "state": "COMPLETE", "params": {"sparsity": 0.3},
           "values": {"top1": 0.92, "gzip_bytes": 400}, "feasible": True}],
      "pareto": [0, 1],
      "best": {"number": 0, "params": {"sparsity": 0.5},
               "flagfile": "best.flags"},
      "final": [{"number": 0, "params": {"sparsity": 0.5},
                 "test": {"top1": 0.951, "gzip_bytes": 301}}],
      "plots": {"pareto": "pareto.png"},
      "hypervolume": 12.5,
  }
