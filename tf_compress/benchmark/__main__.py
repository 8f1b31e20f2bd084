"""`python -m tf_compress.benchmark`: runs `tf_compress.cli.benchmark`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.benchmark", run_name="__main__",
                   alter_sys=True)
