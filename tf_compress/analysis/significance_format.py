"""Words and cells for paired statistics: what a difference may claim."""

__all__ = ["METRIC_WORDS", "difference_cell", "verdict", "claim_sentence",
           "mean_std_cell"]

METRIC_WORDS = {"top1": "top-1", "balanced_accuracy": "balanced accuracy",
                "macro_f1": "macro-F1"}


def _pt(value):
  return f"{100.0 * value:+.1f}"


def difference_cell(stat):
  """`-1.4 pt [-3.1, +0.3]` from one `compare_predictions` entry."""
  if not stat:
    return "-"
  return (f"{_pt(stat['difference'])} pt [{_pt(stat['ci_low'])}, "
          f"{_pt(stat['ci_high'])}]")


def verdict(stat):
  """`better`, `worse` or `not significant`, by the interval alone."""
  if not stat:
    return "-"
  if stat["ci_low"] > 0:
    return "significantly better"
  if stat["ci_high"] < 0:
    return "significantly worse"
  return "not significant"


def claim_sentence(label, stat, reference="the baseline"):
  """One sentence a report may print for one comparison.

  Example: `pruned (int8): -1.4 pt top-1 against the baseline, not
  significant (95% CI -3.1 to +0.3 pt; McNemar p = 0.12).`

  Args:
    label: what is compared, e.g. `pruned (int8)`.
    stat: one `compare_predictions` entry.
    reference: how to name the reference model.
  """
  metric = METRIC_WORDS.get(stat["metric"], stat["metric"])
  level = round(100 * stat["confidence"])
  test = "McNemar" if stat.get("test") == "mcnemar" else "bootstrap"
  return (f"{label}: {_pt(stat['difference'])} pt {metric} against "
          f"{reference}, {verdict(stat)} ({level}% CI "
          f"{_pt(stat['ci_low'])} to {_pt(stat['ci_high'])} pt; {test} "
          f"p = {stat['p_value']:.2g}).")


def mean_std_cell(summary, percent=True):
  """`93.21 ± 0.40%` from a `seed_summary` (std omitted for one seed)."""
  if not summary or summary.get("mean") is None:
    return "-"
  scale, unit = (100.0, "%") if percent else (1.0, "")
  text = f"{scale * summary['mean']:.2f}"
  if summary.get("std") is not None:
    text += f" ± {scale * summary['std']:.2f}"
  return text + unit
