"""mlcd-actions: continuous delivery for machine learning as reusable CI steps."""

__version__ = "0.1.0"
