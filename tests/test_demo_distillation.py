"""The demo's distilled-vs-scratch claim says what the benchmark found."""

import json

from absl import flags
import pytest

from tf_compress import pipeline
from tf_compress.cli import train
from tf_compress.cli.common import parse_flags_or_exit


@pytest.fixture(scope="module")
def demo_distillation(repo_root, tmp_path_factory):
  """The demo's config with only its distillation variants, no exports."""
  values = train.define_flags(flags.FlagValues())
  parse_flags_or_exit(["train", f"--flagfile={repo_root}/configs/demo.flags"],
                      values)
  demo = train.config_from_flags(values)
  config = demo.replace(
      output_dir=str(tmp_path_factory.mktemp("demo_distill")),
      prune_sparsity=None, sweep_sparsity=(), slice_ratio=None, qat=False,
      adv_attack=None, robust_eval_epsilons=(), export=(), benchmark_runs=0,
      verbose=0)
  assert config.distill == demo.distill
  assert config.fit.epochs == demo.fit.epochs == 16
  finding = json.loads(
      (repo_root / "tests" / "data" / "distillation_finding.json")
      .read_text())
  return pipeline.run(config), finding


def test_claim_matches_the_benchmark_finding(demo_distillation):
  report, finding = demo_distillation
  names = [v["name"] for v in report["variants"]]
  assert names == ["baseline", "distilled", "student_scratch"]
  distilled = report["variants"][1]
  control = distilled["control_significance"]
  stat = control["top1"]
  assert control["control"] == "student_scratch"
  assert stat["difference"] == pytest.approx(
      distilled["top1"] - report["variants"][2]["top1"])
  claim = next(c["text"] for c in report["statistics"]["claims"]
               if c.get("control"))
  if finding["significant_gain"]:
    assert stat["ci_low"] > 0 and "significantly better" in claim
  else:
    # The benchmark found no gain: the demo must never show one.
    assert not stat["ci_low"] > 0
    assert "significantly better" not in claim
  assert f"({round(100 * stat['confidence'])}% CI" in claim
