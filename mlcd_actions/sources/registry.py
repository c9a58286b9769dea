"""The source adapter registry: built-ins and plugins alike come from entry points.

Group ``mlcd_actions.sources``; the entry-point name is a URI scheme and the value a
:class:`~mlcd_actions.sources.base.Source` subclass. mlcd-actions declares its own
(``file``, ``http``, ``https``, ``s3``, ``sql``) in ``pyproject.toml``; a plugin adds
more in its own packaging metadata::

    [project.entry-points."mlcd_actions.sources"]
    ftp = "mlcd_ftp:FtpSource"

An adapter module is imported only when a URI needs it (like pandera's backends).
A scheme with no entry point of its own (``sqlite``, ``postgresql+psycopg``) is matched
against the ``schemes`` each adapter class declares, loading adapters one by one.
"""

from __future__ import annotations

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.plugins import Registry
from mlcd_actions.sources.base import Source, mask_uri, scheme_of

GROUP = "mlcd_actions.sources"
REGISTRY: Registry[Source] = Registry(GROUP, base=Source, what="source adapter")


def clear_cache() -> None:
    """Forget the entry points read so far (tests that install a plugin)."""
    REGISTRY.clear()


def registered() -> dict[str, str]:
    """``{scheme: "module:Class"}`` for every registered entry point, without importing."""
    return {name: REGISTRY.entry_points[name].value for name in REGISTRY.names()}


def _load(name: str) -> type[Source]:
    return REGISTRY.get(name)


def adapters() -> dict[str, type[Source]]:
    """Every registered adapter class by entry-point name (imports each adapter module)."""
    return {name: _load(name) for name in REGISTRY.names()}


def get(scheme: str) -> type[Source]:
    """The adapter class for a scheme; :class:`ConfigError` (exit 2) when none handles it."""
    scheme = scheme.lower()
    eps = REGISTRY.entry_points
    for candidate in (scheme, scheme.split("+")[0]):
        if candidate in eps:
            return _load(candidate)
    base = scheme.split("+")[0]
    known = set(eps)
    for name in eps:  # aliases: the schemes each loadable adapter declares
        try:
            cls = _load(name)
        except ConfigError:
            continue  # a broken plugin only fails when its own scheme is asked for
        if scheme in cls.schemes or base in cls.schemes:
            return cls
        known.update(cls.schemes)
    raise ConfigError(f"unknown source scheme {scheme!r}; known: {', '.join(sorted(known))}")


def for_uri(uri: str) -> type[Source]:
    """The adapter class for a source URI (a plain path is ``file``)."""
    if not uri or not uri.strip():
        raise ConfigError("empty source URI")
    try:
        return get(scheme_of(uri))
    except ConfigError as exc:
        raise ConfigError(f"{mask_uri(uri)}: {exc.message}") from exc
