"""The environment's front door for shadow and canary deploys: nginx, configured by mlcd.

One nginx per environment (its own prefix, config, pid and logs under
``<state-dir>/<environment>.nginx/``) listens on a stable address and routes to the app
deployments behind it:

* ``direct``: every request to the serving version;
* ``shadow``: ``/predict`` goes to the serving version, which answers the client, and
  nginx's ``mirror`` sends a copy of every request to the candidate (its answer is
  discarded by nginx; the candidate's prediction log keeps it for the comparison);
* ``canary``: ``split_clients`` on the request id sends ``traffic`` percent of the
  ``/predict`` requests to the candidate. The serving version is the candidate's
  ``backup`` server and ``proxy_next_upstream`` retries a candidate's error or timeout on
  it, so a failing candidate costs a client nothing while its errors are counted.

Every request gets nginx's ``$request_id`` as ``X-Request-ID``, which the apps write in
their prediction logs, so the answers of both versions can be joined. The access log
(JSON lines, mirrored subrequests included) records per request the upstream addresses
(which version answered), their statuses and times. Changing the
route writes the new config, checks it with ``nginx -t`` and reloads nginx gracefully
(``nginx -s reload``): workers finish the requests they hold, so no request fails
during a switch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.core.files import write_text
from mlcd_actions.deploy.base import STATE_DIR, free_port, probe

DIRECT, SHADOW, CANARY = "direct", "shadow", "canary"
STRATEGIES = (DIRECT, SHADOW, CANARY)

LOG_FORMAT = (
    '{"t":"$time_iso8601","rid":"$request_id","uri":"$request_uri",'
    '"status":"$status","ustatus":"$upstream_status","uaddr":"$upstream_addr",'
    '"urt":"$upstream_response_time","rt":"$request_time"}')


@dataclass
class Route:
    """Where requests go. URLs are ``http://host:port`` of the deployments."""

    serving: str
    strategy: str = DIRECT
    candidate: str | None = None
    traffic: float = 0.0

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy {self.strategy!r}: choose one of "
                              f"{', '.join(STRATEGIES)}")
        if self.strategy != DIRECT and not self.candidate:
            raise ConfigError(f"--strategy {self.strategy} needs a candidate deployment")
        if self.strategy == CANARY and not 0 < self.traffic < 100:
            raise ConfigError(f"--traffic {self.traffic:g}: a canary takes more than 0 and "
                              "less than 100 percent")


def _hostport(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def nginx_conf(route: Route, *, listen: str, prefix: Path, access_log: Path,
               user: str | None = None) -> str:
    """The nginx configuration for ``route``."""
    route.check()
    serving = _hostport(route.serving)
    tmp = prefix / "tmp"
    upstreams = [f"    upstream mlcd_serving {{ server {serving}; keepalive 16; }}"]
    predict: list[str]
    if route.strategy == SHADOW:
        upstreams.append(f"    upstream mlcd_candidate {{ server {_hostport(route.candidate)}; "
                         "keepalive 16; }")
        predict = ["            mirror /_mlcd_shadow;",
                   "            proxy_pass http://mlcd_serving;"]
        extra = ["        location = /_mlcd_shadow {",
                 "            internal;",
                 "            proxy_set_header X-Request-ID $request_id;",
                 "            proxy_set_header Content-Type $content_type;",
                 "            proxy_http_version 1.1;",
                 "            proxy_set_header Connection \"\";",
                 "            proxy_connect_timeout 2s;",
                 "            proxy_read_timeout 30s;",
                 "            proxy_pass http://mlcd_candidate/predict$is_args$args;",
                 "        }"]
    elif route.strategy == CANARY:
        upstreams.append(
            f"    upstream mlcd_candidate {{ server {_hostport(route.candidate)} max_fails=0; "
            f"server {serving} backup; keepalive 16; }}")
        upstreams.append(f"    split_clients \"${{request_id}}\" $mlcd_pool {{ "
                         f"{route.traffic:.2f}% mlcd_candidate; * mlcd_serving; }}")
        predict = [
                   "            proxy_next_upstream error timeout http_500 http_502 http_503 "
                   "http_504 non_idempotent;",
                   "            proxy_next_upstream_tries 2;",
                   "            proxy_pass http://$mlcd_pool;"]
        extra = []
    else:
        predict = [
                   "            proxy_pass http://mlcd_serving;"]
        extra = []
    lines = [
        *( [f"user {user};"] if user else []),
        "worker_processes 1;",
        "daemon on;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'error.log'} warn;",
        "events { worker_connections 1024; }",
        "http {",
        f"    log_format mlcd escape=json '{LOG_FORMAT}';",
        f"    access_log {access_log} mlcd;",
        "    log_subrequest on;",
        f"    client_body_temp_path {tmp / 'body'};",
        f"    proxy_temp_path {tmp / 'proxy'};",
        f"    fastcgi_temp_path {tmp / 'fastcgi'};",
        f"    uwsgi_temp_path {tmp / 'uwsgi'};",
        f"    scgi_temp_path {tmp / 'scgi'};",
        "    client_body_buffer_size 1m;",
        "    client_max_body_size 64m;",
        *upstreams,
        "    server {",
        f"        listen {listen};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Connection \"\";",
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Request-ID $request_id;",
        "        proxy_connect_timeout 5s;",
        "        proxy_read_timeout 60s;",
        "        add_header X-Mlcd-Strategy " + route.strategy + " always;",
        "        location = /predict {",
        *predict,
        "        }",
        "        location / {",
        "            proxy_pass http://mlcd_serving;",
        "        }",
        *extra,
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class RouterState:
    """What is kept in the deployment state about the environment's nginx."""

    url: str
    listen: str
    prefix: str
    conf: str
    access_log: str
    strategy: str = DIRECT
    serving: str = ""
    candidate: str | None = None
    traffic: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RouterState | None:
        if not data:
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def nginx_binary(explicit: str | None = None) -> str:
    exe = explicit or os.environ.get("MLCD_NGINX") or shutil.which("nginx") or \
        next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)
    if not exe:
        raise ConfigError("shadow and canary deploys route through nginx: install it "
                          "(apt-get install nginx) or set MLCD_NGINX")
    return exe


def _worker_user() -> str | None:
    """Started as root, nginx's workers run as nobody (whose group is nogroup on Debian)."""
    if os.geteuid() != 0:
        return None
    import grp

    try:
        grp.getgrnam("nogroup")
        return "nobody nogroup"
    except KeyError:
        return "nobody nobody"


class NginxRouter:
    """Start, reconfigure and stop the environment's nginx."""

    def __init__(self, environment: str, state_dir: str | os.PathLike = STATE_DIR, *,
                 nginx: str | None = None) -> None:
        self.environment = environment
        self.prefix = (Path(state_dir) / f"{environment}.nginx").resolve()
        self.nginx = nginx

    def _run(self, *args: str) -> None:
        cmd = [nginx_binary(self.nginx), "-p", str(self.prefix), *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired as exc:
            raise StageFailed(f"nginx {' '.join(args)} timed out") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StageFailed(f"nginx {' '.join(args[:2])} failed: {tail[0]}")

    def pid(self) -> int | None:
        try:
            pid = int((self.prefix / "nginx.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"nginx" in cmdline else None

    def apply(self, route: Route, *, current: RouterState | None = None,
              host: str = "127.0.0.1", port: int | None = None,
              new_log: bool = False) -> RouterState:
        """Route as ``route`` says: start nginx, or reload it with the new config."""
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            for sub in ("tmp", "tmp/body", "tmp/proxy"):
                os.chmod(self.prefix / sub, 0o777)  # noqa: S103 - workers may run as nobody
        running = self.pid() is not None and current is not None
        if running and port and current.listen != f"{host}:{port}":
            raise ConfigError(f"{self.environment} is served by nginx at {current.url}: "
                              f"--proxy-port {port} cannot move it")
        listen = current.listen if running else f"{host}:{port or free_port(host)}"
        access_log = Path(current.access_log) if running and not new_log else \
            self.prefix / "logs" / f"access-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        conf = self.prefix / "nginx.conf"
        text = nginx_conf(route, listen=listen, prefix=self.prefix, access_log=access_log,
                          user=_worker_user())
        candidate = self.prefix / "nginx.conf.new"
        write_text(candidate, text)
        self._run("-t", "-q", "-c", str(candidate))
        os.replace(candidate, conf)
        if running:
            self._reload(access_log, new_log)
        else:
            self._run("-c", str(conf))
        url = f"http://{listen}"
        deadline = time.monotonic() + 10
        while not probe(url + "/health", 2.0):
            if time.monotonic() > deadline:
                raise StageFailed(f"nginx for {self.environment} at {url} does not reach "
                                  f"{route.serving}/health (see {self.prefix / 'error.log'})")
            time.sleep(0.1)
        return RouterState(url=url, listen=listen, prefix=str(self.prefix), conf=str(conf),
                           access_log=str(access_log), strategy=route.strategy,
                           serving=route.serving, candidate=route.candidate,
                           traffic=route.traffic)

    def _reload(self, access_log: Path, new_log: bool) -> None:
        """Graceful reload; returns once the new workers answer with the new config."""
        self._run("-s", "reload", "-c", str(self.prefix / "nginx.conf"))
        # the master re-reads the config asynchronously: wait until the new access log is
        # opened (a new file) or give the workers a moment to take over
        deadline = time.monotonic() + 5
        while new_log and not access_log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # graceful: finish what is in flight
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
