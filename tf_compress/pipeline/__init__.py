"""The run: nested config, the one registry of methods, `run(config) -> report`.

`RunConfig` (one config per concern), `METHODS` (each compression method
declared once; the variants, the sweeps and the `combined` chain read it) and
`run`, which trains, compresses, exports, verifies, benchmarks and reports.
The tuner (`tf_compress.pipeline.tuning`) searches over the same configs.
"""

from tf_compress.pipeline.config import AdversarialConfig
from tf_compress.pipeline.config import ClusterConfig
from tf_compress.pipeline.config import DataConfig
from tf_compress.pipeline.config import DistillConfig
from tf_compress.pipeline.config import EvalConfig
from tf_compress.pipeline.config import ExportConfig
from tf_compress.pipeline.config import FitConfig
from tf_compress.pipeline.config import LatencyConfig
from tf_compress.pipeline.config import PruneConfig
from tf_compress.pipeline.config import QATConfig
from tf_compress.pipeline.config import RunConfig
from tf_compress.pipeline.config import SliceConfig
from tf_compress.pipeline.config import TrainConfig
from tf_compress.pipeline.fields import Option
from tf_compress.pipeline.fields import options
from tf_compress.pipeline.methods import build_combined
from tf_compress.pipeline.methods import chain_stages
from tf_compress.pipeline.methods import COMBINED_NAME
from tf_compress.pipeline.methods import enabled_methods
from tf_compress.pipeline.methods import Method
from tf_compress.pipeline.methods import METHODS
from tf_compress.pipeline.paired import load_predictions
from tf_compress.pipeline.run import run
from tf_compress.pipeline.training import BuildContext
from tf_compress.pipeline.training import VariantResult

__all__ = [
    "AdversarialConfig", "build_combined", "BuildContext", "chain_stages",
    "ClusterConfig", "COMBINED_NAME", "DataConfig", "DistillConfig",
    "enabled_methods", "EvalConfig", "ExportConfig", "FitConfig",
    "LatencyConfig", "load_predictions", "Method", "METHODS", "Option", "options", "PruneConfig",
    "QATConfig", "run", "RunConfig", "SliceConfig", "TrainConfig",
    "VariantResult",
]
