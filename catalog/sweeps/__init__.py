"""Sweeps: a grid of discoveries (task x method x model x seed) run on a process pool, Ray or
Slurm, each cell an ordinary discovery run written to one shared catalog, resumable."""

from catalog.sweeps.executors import EXECUTORS, Executor, get_executor
from catalog.sweeps.grid import Cell, SweepSpec
from catalog.sweeps.run import SweepResult, sweep

__all__ = ["EXECUTORS", "Cell", "Executor", "SweepResult", "SweepSpec", "get_executor", "sweep"]
