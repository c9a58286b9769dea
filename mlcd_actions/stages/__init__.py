"""Stage libraries: each module has ``run(...) -> StageResult`` and never imports click."""
