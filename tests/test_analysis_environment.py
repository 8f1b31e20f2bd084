"""The run environment: versions, and the CPU that latency figures ran on."""

import json

from tf_compress import analysis

_X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma bmi2
"""
_X86_VNNI = _X86.replace("bmi2", "bmi2 avx512f avx512_vnni")
_ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes asimddp sha512 i8mm
CPU implementer\t: 0x41
"""


def test_x86_without_vnni():
  info = analysis.cpu_info(_X86)
  assert info["model"] == "AMD EPYC 7B13"
  assert info["flags"] == ["avx2", "fma"]
  assert info["vnni"] is False


def test_x86_with_vnni():
  info = analysis.cpu_info(_X86_VNNI)
  assert info["flags"] == ["avx2", "fma", "avx512f", "avx512_vnni"]
  assert info["vnni"] is True


def test_arm_dot_product_flags_are_named():
  info = analysis.cpu_info(_ARM)
  assert info["flags"] == ["dotprod", "i8mm"]
  assert info["vnni"] is True


def test_environment_records_this_machine_and_is_json_safe():
  info = analysis.environment_info(seed=3, deterministic=True)
  assert json.loads(json.dumps(info)) == info
  assert info["seed"] == 3 and info["deterministic"] is True
  assert info["cpu_count"] >= 1
  assert info["cpu"]["source"] in ("/proc/cpuinfo", "unavailable")
  assert set(info["cpu"]["flags"]) <= set(
      f if f != "asimddp" else "dotprod" for f in analysis.environment
      .CPU_FLAGS)
  assert info["scipy"] is not None
