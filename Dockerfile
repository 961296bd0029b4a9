# ORcast in a container: docker build -t orcast . ; see README, "Operations".
# The pages' one npm part, hls.js (served from /static/vendor/, never from the internet)
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORCAST_SERVER_HOST=0.0.0.0 \
    ORCAST_SERVER_DATA_DIR=/data \
    ORCAST_LOGGING_FORMAT=json \
    ORCAST_ICE_UDP_PORTS=40000-40199

# a user of its own: the server needs no privilege (ports above 1024, its data dir only)
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin orcast \
    && mkdir -p /data && chown orcast:orcast /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY broadcast ./broadcast
COPY signaling ./signaling
COPY web ./web
COPY --from=web /web/node_modules/hls.js/dist/hls.min.mjs ./web/vendor/hls.min.mjs
# editable: the pages are served from /app/web next to the code
RUN pip install --no-cache-dir -e . && python -c "import aiortc, av, signaling.app"

USER orcast
VOLUME ["/data"]
# HTTP(S) and the WebRTC UDP range (keep it equal to ORCAST_ICE_UDP_PORTS)
EXPOSE 8080/tcp 40000-40199/udp
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status != 200)"]
# SIGTERM: no new sessions, recordings finished, clients told; exits within 8 s
STOPSIGNAL SIGTERM
ENTRYPOINT ["orcast"]
CMD ["serve"]
