"""One lineage id joining data, code and everything built from them (DESIGN §3, §9).

The id is a short stable hash of what determines a model: the sha256 of the training
data file, the git SHA of the code and the code artifact version
(``build-training``'s ``version``)::

    lin-3f2a9c0d41b7 = "lin-" + sha256("data=<sha256>\\ngit=<sha>\\ncode=<version>")[:12]

What is built later (the MLflow run, the registered model version, the image digest)
does not change the id; it is carried next to it in :class:`Lineage`, which every stage
puts into ``StageResult.lineage`` and stamps as MLflow tags (``mlcd.lineage_id``,
``mlcd.data_sha256``, ...), image labels and reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "lin-"
TAG_PREFIX = "mlcd."
ID_LENGTH = 12


def lineage_id(data_sha256: str | None, git_sha: str | None, code_version: str | None) -> str:
    """``lin-`` + 12 hex chars; the same inputs always give the same id.

    A missing part (no git repository, no code artifact) counts as empty, so the id
    still changes whenever any known part changes.
    """
    text = (f"data={(data_sha256 or '').strip().lower()}\n"
            f"git={(git_sha or '').strip().lower()}\n"
            f"code={(code_version or '').strip()}")
    return PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


@dataclass
class Lineage:
    """Everything one lineage id joins. ``id`` is computed from the first three fields
    when not given."""

    data_sha256: str | None = None
    git_sha: str | None = None
    code_version: str | None = None
    data_version: str | None = None
    data_path: str | None = None
    run_id: str | None = None
    experiment_id: str | None = None
    model_uri: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    image: str | None = None
    image_digest: str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = lineage_id(self.data_sha256, self.git_sha, self.code_version)

    # field name -> MLflow tag name
    @staticmethod
    def tag_name(field_name: str) -> str:
        return TAG_PREFIX + ("lineage_id" if field_name == "id" else field_name)

    def to_tags(self) -> dict[str, str]:
        """MLflow tags (``mlcd.lineage_id``, ``mlcd.data_sha256``, ...) for the fields set."""
        tags = {self.tag_name("id"): self.id}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "id" and value not in (None, ""):
                tags[self.tag_name(f.name)] = str(value)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, Any]) -> Lineage:
        """Read the fields back from MLflow tags (unknown tags are ignored).

        The stored ``mlcd.lineage_id`` is kept as is, even if it would not be recomputed
        the same (a run tagged by an older mlcd keeps its id).
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = tags.get(cls.tag_name(f.name))
            if value not in (None, ""):
                values[f.name] = str(value)
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        """For ``StageResult.lineage``: ``{"id": ..., "data_sha256": ..., ...}`` (set fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) not in (None, "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (None if v is None else str(v)) for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Lineage:
        """A copy with some fields changed; the id is kept unless a part of it changed."""
        keep_id = not ({"data_sha256", "git_sha", "code_version"} & set(changes))
        new = dataclasses.replace(self, **changes, **({} if keep_id or "id" in changes
                                                     else {"id": ""}))
        return new
