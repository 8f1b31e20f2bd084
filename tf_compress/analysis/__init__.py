"""Results analysis: metrics, model statistics, plots and run environment."""

from tf_compress.analysis.advisor import advise
from tf_compress.analysis.comparison import comparison_rows
from tf_compress.analysis.comparison import format_comparison
from tf_compress.analysis.environment import cpu_info
from tf_compress.analysis.environment import environment_info
from tf_compress.analysis.flops import count_macs
from tf_compress.analysis.metrics import balanced_accuracy
from tf_compress.analysis.metrics import classification_metrics
from tf_compress.analysis.metrics import confusion_matrix
from tf_compress.analysis.metrics import expected_calibration_error
from tf_compress.analysis.metrics import macro_f1
from tf_compress.analysis.metrics import per_class_accuracy
from tf_compress.analysis.metrics import per_class_change
from tf_compress.analysis.metrics import precision_recall_f1
from tf_compress.analysis.metrics import top_k_accuracy
from tf_compress.analysis.model_stats import count_nonzero_params
from tf_compress.analysis.model_stats import count_params
from tf_compress.analysis.model_stats import keras_file_bytes
from tf_compress.analysis.model_stats import model_stats
# Binds the function `model_summary` over the module of the same name.
from tf_compress.analysis.model_summary import model_summary
from tf_compress.analysis.model_summary_format import format_summary
from tf_compress.analysis.pareto import dominates
from tf_compress.analysis.pareto import hypervolume
from tf_compress.analysis.pareto import pareto_front
from tf_compress.analysis.pareto import pareto_mask
from tf_compress.analysis.plots import plot_training_curves
from tf_compress.analysis.seed_runs import summarize_seeds
from tf_compress.analysis.sensitivity import sensitivity
from tf_compress.analysis.sensitivity_plots import plot_sensitivity
from tf_compress.analysis.significance import compare_predictions
from tf_compress.analysis.significance import mcnemar_exact
from tf_compress.analysis.significance import paired_bootstrap
from tf_compress.analysis.significance import per_class_intervals
from tf_compress.analysis.significance import seed_summary
from tf_compress.analysis.significance import wilson_interval

__all__ = ["advise", "balanced_accuracy", "classification_metrics", "comparison_rows",
           "confusion_matrix", "count_macs", "count_nonzero_params",
           "count_params", "cpu_info", "dominates", "environment_info",
           "expected_calibration_error", "format_comparison",
           "format_summary", "hypervolume", "keras_file_bytes", "macro_f1",
           "model_stats", "model_summary", "pareto_front", "pareto_mask",
           "per_class_accuracy", "per_class_change", "plot_training_curves",
           "precision_recall_f1", "top_k_accuracy", "compare_predictions",
           "mcnemar_exact", "paired_bootstrap", "per_class_intervals",
           "seed_summary", "summarize_seeds", "wilson_interval",
           "sensitivity", "plot_sensitivity"]

# The results report: plots, report.html, report.md (tf_compress.report CLI).
from tf_compress.analysis.report_html import render_html
from tf_compress.analysis.report_md import render_markdown
from tf_compress.analysis.report_plots import write_report_plots
from tf_compress.analysis.report_schema import COMPARISON_HTML
from tf_compress.analysis.report_schema import COMPARISON_MD
from tf_compress.analysis.report_schema import FLAGFILE_NAME
from tf_compress.analysis.report_schema import HISTORY_NAME
from tf_compress.analysis.report_schema import REPORT_HTML
from tf_compress.analysis.report_schema import REPORT_MD
from tf_compress.analysis.report_schema import REPORT_NAME
from tf_compress.analysis.report_schema import REPORT_SCHEMA_VERSION
from tf_compress.analysis.report_schema import PREDICTIONS_NAME
from tf_compress.analysis.report_schema import TUNING_NAME
from tf_compress.analysis.report_writer import load_report
from tf_compress.analysis.report_writer import load_tuning
from tf_compress.analysis.report_writer import run_labels
from tf_compress.analysis.report_writer import write_comparison
from tf_compress.analysis.report_writer import write_reports

__all__ += ["load_report", "load_tuning", "render_html", "render_markdown",
            "run_labels", "write_comparison", "write_report_plots",
            "write_reports"]
__all__ += ["COMPARISON_HTML", "COMPARISON_MD", "FLAGFILE_NAME",
            "HISTORY_NAME", "REPORT_HTML", "REPORT_MD", "REPORT_NAME",
            "PREDICTIONS_NAME", "REPORT_SCHEMA_VERSION", "TUNING_NAME"]
