"""One self-contained HTML report (report.html) for training runs and evaluations."""

from transunet3d.report.build import write_report

__all__ = ["write_report"]
