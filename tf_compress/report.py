"""`python -m tf_compress.report`: runs `tf_compress.cli.report`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.report", run_name="__main__",
                   alter_sys=True)
