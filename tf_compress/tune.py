"""`python -m tf_compress.tune`: runs `tf_compress.cli.tune`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.tune", run_name="__main__",
                   alter_sys=True)
