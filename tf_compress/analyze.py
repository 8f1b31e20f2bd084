"""`python -m tf_compress.analyze`: runs `tf_compress.cli.analyze`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.analyze", run_name="__main__",
                   alter_sys=True)
