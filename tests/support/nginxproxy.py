"""Debian's nginx in front of ORcast processes on loopback, as the README sets it up: a balancer
for the cluster, and the HLS cache (`proxy_cache` with `proxy_cache_lock`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

# the README's HLS cache, word for word (but the cache's directory)
HLS_CACHE = """
        location /hls/s/ {{
            proxy_pass http://orcast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hls;
            proxy_cache_key $uri$is_args$args;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_cache_lock_age 10s;
            proxy_read_timeout 20s;
            add_header X-Cache-Status $upstream_cache_status;
        }}
"""


class Nginx:
    def __init__(self, tmp: Path, port: int, upstreams: list[int], hls_cache: bool = False) -> None:
        self.tmp, self.port = tmp, port
        self.base = f"http://127.0.0.1:{port}"
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(binary), "nginx is missing: ./scripts/test.sh installs it (apt install nginx)"
        conf = self._config(upstreams, hls_cache)
        self.process = subprocess.Popen([binary, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, self.errors()
                time.sleep(0.1)

    def errors(self) -> str:
        log = self.tmp / "nginx-error.log"
        return log.read_text() if log.exists() else "(no nginx error log)"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def _config(self, upstreams: list[int], hls_cache: bool) -> Path:
        tmp = self.tmp
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams)
        temp = {name: tmp / f"nginx-{name}" for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        cache_zone = (f"proxy_cache_path {temp['cache']} levels=1:2 keys_zone=hls:10m max_size=1g inactive=2m "
                      "use_temp_path=off;") if hls_cache else ""
        conf = tmp / "nginx.conf"
        conf.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    {cache_zone}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream orcast {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 64k;
{HLS_CACHE.format() if hls_cache else ""}
        location / {{
            proxy_pass http://orcast;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
        }}
    }}
}}
""")
        return conf
