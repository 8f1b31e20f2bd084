"""`python -m tf_compress.advise`: runs `tf_compress.cli.advise`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.advise", run_name="__main__",
                   alter_sys=True)
