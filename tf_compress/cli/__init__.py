"""The command-line tools, thin over the library.

Each command module has one shape: `define_flags(flag_values)`, a
`main(argv)` of a few lines that turns the flags into a config and calls the
library's `run`, and `entry_point()` for `python -m` and console scripts:

- `train`: `tf_compress.pipeline.run` (flags generated from `RunConfig`);
- `tune`: `tf_compress.pipeline.tuning.tune`;
- `analyze`: dataset analysis; `summary`: per-layer model summary;
- `report`: rebuild or compare run reports; `benchmark`: LiteRT latency;
- `advise`: which export of a run to ship, within an accuracy budget;
- `launch`: N workers of `train` on this machine, under
  `--strategy=multi_worker`.

`python -m tf_compress.<command>` runs the same modules.
"""
