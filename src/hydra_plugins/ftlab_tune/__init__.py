"""ftlab's Hydra plugins: the tuned sweeper (:mod:`ftlab.tune`)."""
