"""Kits for plugin authors' tests: the source adapter contract (:mod:`.sources`)."""
