"""The production-stage fixtures (a SQLite registry with models:/demo/1 and /2, stopping
local deployments) shared with tests/deploy."""

from tests.deploy.conftest import _registered_store, registered, stop_deployments  # noqa: F401
