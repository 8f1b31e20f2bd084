"""`python -m tf_compress.summary`: runs `tf_compress.cli.summary`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.summary", run_name="__main__",
                   alter_sys=True)
