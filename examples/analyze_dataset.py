"""Analyse a dataset before compressing a model trained on it.

  python examples/analyze_dataset.py                # digits
  python examples/analyze_dataset.py path/to/data.npz
"""

import json
import sys

import tf_compress as tfc
from tf_compress.data import format_analysis


def main():
  source = sys.argv[1] if len(sys.argv) > 1 else "digits"
  splits = tfc.load_dataset(source)
  analysis = splits.analyze()
  print(format_analysis(analysis))
  print(json.dumps({"imbalance_ratio": analysis["imbalance_ratio"],
                    "suggested_class_weights":
                        analysis["suggested_class_weights"]}))


if __name__ == "__main__":
  main()
