"""The EM engine: one loop for every model (restarts, convergence, SQUAREM, chunked E-steps)."""

from emkit.engine.loop import (
    EMConfig,
    FitResult,
    NumericalError,
    Progress,
    ProgressCallback,
    expected_stats,
    run_em,
)
from emkit.engine.monitor import Monitor
from emkit.engine.protocol import ArrayData, Batch, DataSource, Flattenable, Model
from emkit.engine.restarts import fit
from emkit.engine.stats import Stats

__all__ = [
    "ArrayData",
    "Batch",
    "DataSource",
    "EMConfig",
    "FitResult",
    "Flattenable",
    "Model",
    "Monitor",
    "NumericalError",
    "Progress",
    "ProgressCallback",
    "Stats",
    "expected_stats",
    "fit",
    "run_em",
]
