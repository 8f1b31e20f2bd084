"""Results analysis: metrics, model statistics, plots and run environment."""

from tf_compress.analysis.comparison import comparison_rows
from tf_compress.analysis.comparison import format_comparison
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
from tf_compress.analysis.pareto import dominates
from tf_compress.analysis.pareto import hypervolume
from tf_compress.analysis.pareto import pareto_front
from tf_compress.analysis.pareto import pareto_mask
from tf_compress.analysis.plots import plot_training_curves
from tf_compress.analysis.summary import model_summary
from tf_compress.analysis.summary_format import format_summary

__all__ = ["balanced_accuracy", "comparison_rows", "format_comparison", "classification_metrics", "confusion_matrix", "count_macs",
           "count_nonzero_params", "count_params", "environment_info",
           "expected_calibration_error", "macro_f1", "per_class_change",
           "precision_recall_f1", "dominates", "hypervolume", "pareto_front",
           "pareto_mask",
           "keras_file_bytes", "model_stats", "per_class_accuracy",
           "plot_training_curves", "top_k_accuracy"]
__all__ += ["format_summary", "model_summary"]

# The results report: plots, report.html, report.md (tf_compress.report CLI).
from tf_compress.analysis.reports import load_report
from tf_compress.analysis.reports import write_comparison
from tf_compress.analysis.reports import write_reports
from tf_compress.analysis.report_html import render_html
from tf_compress.analysis.report_md import render_markdown
from tf_compress.analysis.report_plots import write_report_plots

__all__ += ["load_report", "render_html", "render_markdown",
            "write_comparison", "write_report_plots", "write_reports"]
