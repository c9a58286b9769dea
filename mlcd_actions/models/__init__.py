"""Models: loading MLflow models (:mod:`.loading`, :mod:`.mlmodel`), tracking, metrics,
fairness and plots. Training code lives in :mod:`mlcd_actions.training` (a stable import
path: ``python -m mlcd_actions.training.child``)."""
