"""The demo: the whole pipeline on synthetic phantoms, with an HTML report."""

from transunet3d.demo.pipeline import DemoResult, DemoSettings, run_demo

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
