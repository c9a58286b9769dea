"""Source adapters for ``mlcd ingest``: local files, HTTP(S), S3, SQL, and plugins.

See :mod:`mlcd_actions.sources.base` for the interface and
:mod:`mlcd_actions.sources.registry` for how adapters are found (entry points, group
``mlcd_actions.sources``). Nothing heavy is imported here.
"""

from __future__ import annotations

from mlcd_actions.sources.base import Source, SourceData, mask_uri, scheme_of
from mlcd_actions.sources.registry import GROUP, adapters, for_uri, get, registered

__all__ = ["GROUP", "Source", "SourceData", "adapters", "for_uri", "get", "mask_uri",
           "registered", "scheme_of"]
