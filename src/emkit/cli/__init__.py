"""The ``emkit`` command: fit models to CSV/Parquet files, inspect and apply them, run demos.

Every user error (bad file, bad column, bad option value, unreadable model) prints one red
``error: ...`` line on stderr and exits with status 2; no traceback.

One module per command area: :mod:`~emkit.cli.fit` (``fit gmm``, ``fit mixture``),
:mod:`~emkit.cli.hmm` (``fit hmm``; HMM files in ``predict`` and ``info``),
:mod:`~emkit.cli.select`, :mod:`~emkit.cli.predict` (``predict``, ``detect``, ``info``),
:mod:`~emkit.cli.impute`, :mod:`~emkit.cli.regimes` and :mod:`~emkit.cli.demo`; what they
share is in :mod:`~emkit.cli._common` and :mod:`~emkit.cli._report`.
"""

from __future__ import annotations

import click

from emkit import __version__
from emkit.cli._common import _Group
from emkit.cli.demo import demo
from emkit.cli.fit import fit_group
from emkit.cli.impute import impute
from emkit.cli.predict import detect, info, predict
from emkit.cli.regimes import regimes
from emkit.cli.select import select_command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emkit")
def main() -> None:
    """Fit latent-variable models by Expectation-Maximization."""


for _command in (fit_group, select_command, predict, detect, info, impute, regimes, demo):
    main.add_command(_command)

__all__ = ["main"]
