"""Hydra finds sweepers only in its ``hydra_plugins`` namespace: this is where
``hydra/sweeper=tuned`` (``tune=lr``) names ftlab's tuned sweeper, which lives in
:mod:`ftlab.tune`."""

from ftlab.tune import TunedSweeper as _TunedSweeper


class TunedSweeper(_TunedSweeper):
    """Every method at its own learning rate, chosen on validation data (:mod:`ftlab.tune`)."""
