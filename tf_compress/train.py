"""`python -m tf_compress.train`: runs `tf_compress.cli.train`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.train", run_name="__main__",
                   alter_sys=True)
