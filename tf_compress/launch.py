"""`python -m tf_compress.launch`: runs `tf_compress.cli.launch`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("tf_compress.cli.launch", run_name="__main__",
                   alter_sys=True)
