"""`--seeds`: the whole run once per seed, summarised across seeds."""

import io
import json
import math

import numpy as np
import pytest

import tf_compress
from tf_compress.analysis import seed_runs
from tf_compress.cli import report as report_cli


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("seeds")
  config = tf_compress.RunConfig.from_flat(
      output_dir=str(out), epochs=1, finetune_epochs=1, prune_sparsity=0.5,
      prune_begin_epoch=0, prune_end_epoch=1, export=("int8",),
      benchmark_runs=0, bootstrap_resamples=200, seeds=(0, 1), verbose=0)
  return out, tf_compress.pipeline.run(config)


def _per_seed(out, seed):
  return json.loads((out / f"seed_{seed}" / "report.json").read_text())


def test_each_seed_is_a_complete_run(seeds_run):
  out, report = seeds_run
  for seed in (0, 1):
    one = _per_seed(out, seed)
    assert one["config"]["seed"] == seed and one["config"]["seeds"] == []
    assert (out / f"seed_{seed}" / "baseline.keras").is_file()
    assert (out / f"seed_{seed}" / "pruned_int8.tflite").is_file()
  assert report["seeds"]["seeds"] == [0, 1]
  assert report["seeds"]["runs"] == ["seed_0", "seed_1"]
  assert report["config"]["seeds"] == [0, 1]
  # The seeds differ: a repeated seed would give identical baselines.
  assert _per_seed(out, 0)["variants"][0]["test_loss"] != _per_seed(
      out, 1)["variants"][0]["test_loss"]


def test_mean_and_std_equal_the_per_seed_values(seeds_run):
  out, report = seeds_run
  runs = [_per_seed(out, s) for s in (0, 1)]
  models = {(m["variant"], m["mode"]): m for m in report["seeds"]["models"]}
  assert set(models) == {("baseline", "keras"), ("baseline", "int8"),
                         ("pruned", "keras"), ("pruned", "int8")}
  pruned = [next(v for v in r["variants"] if v["name"] == "pruned")
            for r in runs]
  values = [v["top1"] for v in pruned]
  summary = models[("pruned", "keras")]["figures"]["top1"]
  assert summary["values"] == values
  assert summary["mean"] == pytest.approx(np.mean(values))
  assert summary["std"] == pytest.approx(abs(values[0] - values[1])
                                         / math.sqrt(2))
  # t(0.975, 1 dof) = 12.706: the two-seed interval of the mean.
  half = 12.7062047 * summary["std"] / math.sqrt(2)
  assert summary["ci_low"] == pytest.approx(summary["mean"] - half)
  deltas = [p["top1"] - r["variants"][0]["top1"]
            for p, r in zip(pruned, runs)]
  assert models[("pruned", "keras")]["difference"]["top1"]["values"] == (
      pytest.approx(deltas))
  int8 = [next(e for e in p["tflite"] if e["mode"] == "int8")
          for p in pruned]
  figures = models[("pruned", "int8")]["figures"]
  assert figures["top1"]["values"] == [e["tflite_top1"] for e in int8]
  assert figures["gzip_bytes"]["mean"] == pytest.approx(
      np.mean([e["gzip_bytes"] for e in int8]))
  assert models[("baseline", "keras")]["difference"] == {}


def test_multi_seed_report_points_into_the_first_seed(seeds_run):
  out, report = seeds_run
  for variant in report["variants"]:
    assert (out / variant["model_path"]).is_file()
    for export in variant["tflite"]:
      assert (out / export["path"]).is_file()
  assert (out / report["artifacts"]["predictions"]).is_file()
  assert report["artifacts"]["plots"]["seeds"] == "seeds_accuracy.png"
  markdown = (out / "report.md").read_text()
  assert "### Across seeds" in markdown
  summary = next(m for m in report["seeds"]["models"]
                 if (m["variant"], m["mode"]) == ("pruned", "keras"))
  top1 = summary["figures"]["top1"]
  assert (f"{100 * top1['mean']:.2f} ± {100 * top1['std']:.2f}%"
          in markdown)


def test_report_command_rebuilds_a_multi_seed_run(seeds_run):
  out, _ = seeds_run
  (out / "report.html").unlink()
  (out / "seeds_accuracy.png").unlink()
  written = report_cli.run([str(out)], stream=io.StringIO())
  assert "seeds" in written["plots"]
  html = (out / "report.html").read_text()
  assert "Across seeds" in html
  assert (out / "seeds_accuracy.png").stat().st_size > 1000


def test_summarize_seeds_checks_its_inputs():
  with pytest.raises(ValueError, match="one report and run per seed"):
    seed_runs.summarize_seeds([{}], [0, 1], ["seed_0"])


@pytest.mark.parametrize("seeds,match", [("0,0", "without repeats"),
                                         ("0,-1", r"2\*\*31"),
                                         ("a,b", "list of int")],
                         ids=["repeat", "negative", "text"])
def test_bad_seeds_are_refused(tmp_path, seeds, match):
  with pytest.raises(tf_compress.UserInputError, match=match):
    tf_compress.RunConfig.from_flat(output_dir=str(tmp_path), seeds=seeds)


def _tiny_report(base, distilled, scratch):
  variant = lambda name, top1, **extra: dict(name=name, top1=top1, **extra)
  return {"variants": [
      variant("baseline", base),
      variant("distilled", distilled,
              control_significance={"control": "student_scratch"}),
      variant("student_scratch", scratch)]}


def test_control_difference_is_summarised_per_seed():
  reports = [_tiny_report(0.9, 0.86, 0.84), _tiny_report(0.92, 0.85, 0.85),
             _tiny_report(0.91, 0.88, 0.85)]
  block = seed_runs.summarize_seeds(reports, [0, 1, 2],
                                    ["seed_0", "seed_1", "seed_2"])
  distilled = next(m for m in block["models"]
                   if m["variant"] == "distilled")
  assert distilled["control"] == "student_scratch"
  gain = distilled["difference_vs_control"]["top1"]
  assert gain["values"] == pytest.approx([0.02, 0.0, 0.03])
  assert gain["mean"] == pytest.approx(0.05 / 3)
  assert gain["std"] == pytest.approx(np.std([0.02, 0.0, 0.03], ddof=1))
  assert distilled["difference"]["top1"]["values"] == pytest.approx(
      [-0.04, -0.07, -0.03])
  scratch = next(m for m in block["models"]
                 if m["variant"] == "student_scratch")
  assert "control" not in scratch
