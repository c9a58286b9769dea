"""Adapters through entry points: built-ins and third-party plugins come in the same way.

``Registry("mlcd_actions.deploy_targets", base=Target, what="deploy target")`` reads the
entry-point group once, imports an adapter module only when it is asked for, and turns
a broken or unknown adapter into one clear :class:`ConfigError` line.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from mlcd_actions.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str, *, base: type, what: str) -> None:
        self.group = group
        self.base = base
        self.what = what
        self._cache: dict[str, type[T]] = {}

    @functools.cached_property
    def entry_points(self) -> dict[str, EntryPoint]:
        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            found.setdefault(ep.name.lower(), ep)
        return found

    def names(self) -> list[str]:
        return sorted(self.entry_points)

    def get(self, name: str) -> type[T]:
        key = (name or "").lower()
        if key not in self.entry_points:
            raise ConfigError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
        if key not in self._cache:
            ep = self.entry_points[key]
            try:
                cls = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin: say which one
                raise ConfigError(f"{self.what} {name!r} ({ep.value}) cannot be loaded: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise ConfigError(f"{self.what} {name!r} ({ep.value}) is not a "
                                  f"{self.base.__name__} subclass")
            self._cache[key] = cls
        return self._cache[key]

    def clear(self) -> None:
        self._cache.clear()
        self.__dict__.pop("entry_points", None)
