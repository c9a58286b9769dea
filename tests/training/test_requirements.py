"""``mlcd_actions.training.requirements``: the one-scan index of installed distributions
gives the requirements one ``importlib.metadata`` lookup per name gives."""

from __future__ import annotations

import importlib.metadata as md

from mlcd_actions.training import requirements


def _one_lookup_each(name: str):
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def test_indexed_lookups_equal_one_lookup_per_name(monkeypatch):
    tops = sorted({name for names in md.packages_distributions().values() for name in names}
                  | set(md.packages_distributions()))
    lists = [[], ["sklearn", "scipy", "joblib", "json", "not_a_module_xyz"], tops,
             ["yaml", "PIL", "dateutil", "google", "attr", "_distutils_hack", "typing_extensions"]]
    fast = [requirements.pip_requirements(mods, extra=["lightgbm>=4"]) for mods in lists]
    monkeypatch.setattr(requirements, "_dist", _one_lookup_each)
    slow = [requirements.pip_requirements(mods, extra=["lightgbm>=4"]) for mods in lists]
    assert fast == slow
    assert any(r.startswith("scikit-learn==") for r in fast[1])
