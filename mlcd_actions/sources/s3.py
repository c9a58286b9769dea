"""S3 and S3-compatible stores (MinIO, Ceph, moto...): ``s3://bucket/key``.

``s3://bucket/key.csv`` reads one object; ``s3://bucket/prefix/`` every table object under
the prefix; ``s3://bucket/prefix/*.parquet`` the objects matching the glob. Each is
downloaded to a temporary file with progress, then read like a local file.

The endpoint comes from ``--endpoint-url``, else ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, else AWS. Credentials come from the usual AWS chain
(environment, profile, instance role). The client is botocore's (what s3fs and
``dvc[s3]`` bring too, so no boto3 pin can disagree with theirs); timeouts and
retries go to it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.data.tables import format_of, is_table_name, iter_file_batches
from mlcd_actions.sources.base import Source, SourceData

_GLOB = ("*", "?", "[")
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_AUTH = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
         "InvalidToken", "AuthorizationHeaderMalformed", "AllAccessDisabled"}


def split_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise ConfigError(f"{uri}: no bucket in the URI (expected s3://bucket/key)")
    if not key:
        raise ConfigError(f"{uri}: no key in the URI (expected s3://bucket/key or a prefix/)")
    return bucket, key


def endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Source(Source):
    name = "s3"
    schemes = ("s3", "s3a")
    options = ("format", "progress", "timeout", "retries", "endpoint_url")
    contract_fixtures = ("s3",)

    def __init__(self, *, endpoint_url: str | None = None, **options: Any) -> None:
        super().__init__(endpoint_url=endpoint_url, **options)
        self.endpoint_url = endpoint_url or endpoint_from_env()

    def client(self):
        try:
            import botocore.session
            from botocore.config import Config
        except ModuleNotFoundError as exc:
            raise ConfigError("s3:// sources need botocore: pip install 'mlcd-actions[s3]'"
                              ) from exc
        config = Config(connect_timeout=self.timeout, read_timeout=self.timeout,
                        retries={"total_max_attempts": self.retries + 1, "mode": "standard"})
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        try:
            return botocore.session.get_session().create_client(
                "s3", endpoint_url=self.endpoint_url, config=config,
                region_name=region or "us-east-1")
        except ValueError as exc:  # a malformed endpoint URL
            raise ConfigError(f"--endpoint-url {self.endpoint_url!r}: {exc}") from exc

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[SourceData]:
        bucket, key = split_uri(uri)
        client = self.client()
        with _errors(uri, self):
            objects = self._objects(client, bucket, key, uri)
        formats = [format_of(k, explicit=self.format, label=f"s3://{bucket}/{k}")
                   for k, _ in objects]
        with tempfile.TemporaryDirectory(prefix="mlcd-s3-") as tmp:
            files = []
            infos = []
            for i, ((obj_key, head), fmt) in enumerate(zip(objects, formats, strict=False)):
                label = f"s3://{bucket}/{obj_key}"
                target = Path(tmp) / f"{i}{PurePosixPath(obj_key).suffix}"
                with _errors(label, self):
                    self._download(client, bucket, obj_key, head, target, label)
                files.append((target, fmt, label))
                infos.append(_info(obj_key, head, fmt))
            details: dict[str, Any] = {"bucket": bucket, "endpoint_url": self.endpoint_url
                                       or "aws"}
            if len(infos) == 1:
                details.update({k: v for k, v in infos[0].items() if k != "key"})
                details["key"] = infos[0]["key"]
            else:
                details["objects"] = infos
                details["content_length"] = sum(i.get("content_length", 0) for i in infos)

            def batches():
                for path, fmt, label in files:
                    yield from iter_file_batches(path, fmt, label=label)

            yield SourceData(batches(), details)

    def _objects(self, client, bucket: str, key: str, uri: str) -> list[tuple[str, dict]]:
        """``[(key, head-or-listing-entry)]`` for a key, a prefix/ or a glob."""
        if not key.endswith("/") and not any(c in key for c in _GLOB):
            return [(key, client.head_object(Bucket=bucket, Key=key))]
        prefix = key
        for c in _GLOB:
            if c in prefix:
                prefix = prefix[: prefix.index(c)]
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                if k.endswith("/"):
                    continue
                if key.endswith("/") and not any(c in key for c in _GLOB):
                    if is_table_name(k) and not PurePosixPath(k).name.startswith((".", "_")):
                        found.append((k, obj))
                elif fnmatch.fnmatchcase(k, key):
                    found.append((k, obj))
        if not found:
            raise DataError(f"{uri}: no objects match")
        return sorted(found)

    def _download(self, client, bucket, key, head, target: Path, label: str) -> None:
        from mlcd_actions.core.progress import Progress

        total = head.get("ContentLength", head.get("Size"))
        with Progress(f"download {label}", total=total, unit="bytes",
                      enabled=None if self.progress else False) as bar, \
                open(target, "wb") as fh:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                for chunk in body.iter_chunks(chunk_size=1 << 20):
                    fh.write(chunk)
                    bar.update(len(chunk))
            finally:
                body.close()

    @classmethod
    def contract_source(cls, kind: str, table_path: Path, workdir: Path,
                        fixture: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
        import uuid

        import pyarrow.parquet as pq

        endpoint, client = fixture("s3")
        bucket = f"contract-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        if kind == "missing":
            return f"s3://{bucket}/no-such-table.parquet", {"endpoint_url": endpoint}
        table = pq.read_table(table_path)
        local = workdir / f"s3-{kind}.parquet"
        pq.write_table(table.slice(0, 0) if kind == "empty" else table, local)
        client.upload_file(str(local), bucket, f"tables/{kind}.parquet")
        return f"s3://{bucket}/tables/{kind}.parquet", {"endpoint_url": endpoint}


def _info(key: str, head: dict, fmt: str) -> dict[str, Any]:
    modified = head.get("LastModified")
    info = {
        "key": key,
        "etag": (head.get("ETag") or "").strip('"') or None,
        "content_length": head.get("ContentLength", head.get("Size")),
        "last_modified": modified.isoformat() if hasattr(modified, "isoformat") else modified,
        "version_id": head.get("VersionId"),
        "format": fmt,
    }
    return {k: v for k, v in info.items() if v is not None}


@contextlib.contextmanager
def _errors(label: str, source: S3Source) -> Iterator[None]:
    """botocore errors -> one line: missing is exit 2, auth/unreachable is exit 3."""
    from botocore import exceptions as bx

    where = f" at {source.endpoint_url}" if source.endpoint_url else ""
    try:
        yield
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = err.get("Message") or code
        if code in _MISSING or status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object"
            raise DataError(f"{label}: no such {what}{where}") from exc
        if code in _AUTH or status in (401, 403):
            raise ServiceError(f"{label}: access refused{where} ({code}: {message}); "
                               "check the credentials") from exc
        raise ServiceError(f"{label}: S3 error{where}: {code} {message}".strip()) from exc
    except bx.NoCredentialsError as exc:
        raise ServiceError(f"{label}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY or a profile)") from exc
    except (bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise ServiceError(f"{label}: timed out after {source.timeout:g}s{where}") from exc
    except (bx.EndpointConnectionError, bx.ConnectionClosedError) as exc:
        raise ServiceError(f"{label}: cannot connect{where or ' to S3'}") from exc
    except bx.BotoCoreError as exc:
        raise ServiceError(f"{label}: {type(exc).__name__}: {exc}") from exc
