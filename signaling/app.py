"""The aiohttp application: explicit route lists, typed state, lifecycles in cleanup_ctx."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcast.broadcaster import Broadcaster, BroadcastSettings
from broadcast.lifecycle import start_every, stop_task
from broadcast.qa.board import BoardLimits
from broadcast.qa.boards import QaSettings
from broadcast.qa.store import DB_FILE as QA_DB_FILE
from broadcast.recording.manager import RecordingSettings
from broadcast.telestration.annotationlog import AnnotationLog
from broadcast.workers.pool import WorkerSettings
from signaling.auth.access import Access
from signaling.auth.hlsprefix import HlsPrefixes
from signaling.auth.tickets import MediaTickets
from signaling.auth.tokens import TokenIssuer, load_secret
from signaling.cluster import shared
from signaling.cluster.directory import Cluster, LocalCluster
from signaling.cluster.forward import session_forwarding
from signaling.cluster.node import ClusterNode
from signaling.config.settings import ServerConfig
from signaling.health import Health
from signaling.http import (
    admin,
    drawings,
    events,
    health,
    hls,
    metrics,
    pages,
    privacy,
    qa,
    recordings,
    sources,
    whep,
    whip,
    ws,
)
from signaling.http.middleware import MIDDLEWARES, api_options
from signaling.keys import (
    ACCESS,
    BROADCASTER,
    CLUSTER,
    CONFIG,
    HEALTH,
    HLS_PREFIXES,
    METRICS,
    TELESTRATION,
    TICKETS,
    WEB_ROOT,
    WS_HUB,
)
from signaling.livehub import WsHub
from signaling.logs.format import install_bad_http_filter
from signaling.store.eventstore import EventStore
from signaling.telestration import Telestration

logger = logging.getLogger(__name__)
GENERATIONS_S = 5.0  # how often a node checks the cluster's link generations (revocations come at once)
BOARD_JOIN_S = 10.0  # a joining node waits this long for its Q&A boards to catch up before serving

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
async def _broadcaster_ctx(app: web.Application) -> AsyncIterator[None]:
    """The media plane owns its parts (recordings, thumbnails, the Q&A store): it opens them
    before serving, with the event store's rules, and closes them after its sessions."""
    broadcaster, store = app[BROADCASTER], app[ACCESS].store
    await broadcaster.open(
        record_policy=lambda slug: (event := store.get(slug)) is not None and event.record,
        accepts_theatre=lambda slug, theatre: (event := store.get(slug)) is not None and event.accepts_theatre(theatre),
    )
    sources.start_sources(app)
    yield
    await broadcaster.close()


def recording_settings(config: ServerConfig) -> RecordingSettings:
    return RecordingSettings(
        root=config.recordings_root, segment_s=config.segment_minutes * 60,
        min_free_bytes=int(config.min_free_gb * 1e9), delete_after_days=config.delete_after_days)


def worker_settings(config: ServerConfig) -> WorkerSettings:
    argv = [sys.executable, "-m", "signaling.worker", "--log-level", config.log_level,
            "--log-format", config.log_format]
    return WorkerSettings(count=config.workers, argv=argv, udp_ports=config.udp_ports)


def qa_settings(config: ServerConfig, secret: bytes) -> QaSettings:
    return QaSettings(db_path=config.data_dir / QA_DB_FILE, seat_secret=secret,
                      limits=BoardLimits(questions_per_minute=config.questions_per_minute,
                                         max_questions=config.max_questions))


async def _access_ctx(app: web.Application) -> AsyncIterator[None]:
    access = app[ACCESS]
    access.start()
    yield
    await access.stop()
    access.store.close()


def make_cluster(config: ServerConfig) -> Cluster:
    """One node alone (the default), or a node of a cluster on Redis ([cluster])."""
    if config.cluster_redis is None or config.cluster_node_url is None:
        return LocalCluster()
    from signaling.cluster.rediscluster import RedisCluster, node_id_of  # needs redis only here
    return RedisCluster(config.cluster_redis, config.cluster_node_id or node_id_of(config.cluster_node_url),
                        config.cluster_node_url)


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Joins the cluster once the media plane and access are open; leaves it first."""
    node, access = app[CLUSTER], app[ACCESS]

    async def on_message(message: dict[str, Any]) -> None:
        if not await shared.apply(app, message):  # events and links changed on another node
            await node.on_message(message, access)

    await node.cluster.start(node.report, on_message)
    access.announce = node.announce
    node.on_privacy = lambda path, pause: privacy.apply_privacy(app, path, pause)
    node.on_draw = app[TELESTRATION].on_announced
    if node.cluster.enabled:
        access.elsewhere = node.sessions_elsewhere
    generations = None
    boards = None
    config, qa = app[CONFIG], app[BROADCASTER].qa
    if node.cluster.enabled and config.cluster_redis is not None:
        await node.agree_generations(access.store)  # before the first request: the same links everywhere
        generations = start_every(GENERATIONS_S, lambda: node.agree_generations(access.store),
                                  "agreeing on the events' links with the cluster")
        # one Q&A board per event across the cluster, each node a full copy
        from signaling.cluster.qalog import RedisBoardLog
        from signaling.cluster.rediscluster import redacted
        boards = RedisBoardLog(config.cluster_redis, redacted(config.cluster_redis))
        qa.on_board = boards.follow
        for board in list(qa.boards.values()):
            boards.follow(board)
        for event in access.store.events():
            qa.board(event.slug)
        for event in access.store.events():
            if not await boards.joined(event.slug, BOARD_JOIN_S):
                logger.warning("Q&A %s: not caught up with the cluster's board yet; it catches up in the "
                               "background", event.slug)
    yield
    await stop_task(generations)
    if boards is not None:
        qa.on_board = None
        await boards.close()
    access.announce = None
    access.elsewhere = None
    await node.cluster.close()


def open_store(config: ServerConfig) -> EventStore:
    """The event store, with the config file's events written in (config wins for them)."""
    store = EventStore(config.data_dir)
    for event in config.events:
        store.put_event(event, replace_existing=True)
    store.prune()
    return store


def create_app(config: ServerConfig, broadcaster: Broadcaster | None = None) -> web.Application:
    install_bad_http_filter()
    app = web.Application(middlewares=[*MIDDLEWARES, session_forwarding],
                          client_max_size=64 * 1024)
    app[CONFIG] = config
    app[WEB_ROOT] = WEB_DIR
    secret = load_secret(config.data_dir)
    app[BROADCASTER] = broadcaster or Broadcaster(BroadcastSettings(
        ice_servers=config.ice_servers,
        udp_ports=config.udp_ports,
        max_sessions=config.max_sessions,
        max_publishers=config.max_publishers,
        connect_timeout=config.connect_timeout,
        retry_after=config.retry_after,
        on_demand_grace_s=float(config.on_demand_grace),
        fast_send=config.relay_send_path == "fast",
        udp_gso=config.relay_udp_gso,
        workers=worker_settings(config),
        recording=recording_settings(config),
        qa=qa_settings(config, secret),
    ))
    app[ACCESS] = Access(config, TokenIssuer(secret), open_store(config), app[BROADCASTER])
    app[CLUSTER] = ClusterNode(make_cluster(config), app[BROADCASTER], app[ACCESS].issuer,
                               app[ACCESS].store.token_gen, app[ACCESS].live_counts)
    # pulls from other servers' WHEP endpoints, and from the cluster's other nodes
    app[BROADCASTER].whep_client = app[CLUSTER].whep_client
    app[TICKETS] = MediaTickets(secret)
    app[HLS_PREFIXES] = HlsPrefixes(secret)
    app[WS_HUB] = WsHub(app[BROADCASTER])
    app[WS_HUB].infos = app[CLUSTER].stream_infos  # every node's feeds
    app[TELESTRATION] = Telestration(app[BROADCASTER], app[WS_HUB], app[ACCESS],
                                     AnnotationLog(config.recordings_root), app[CLUSTER])
    app[HEALTH] = Health()
    app[METRICS] = metrics.make_registry(app[BROADCASTER], app[CLUSTER], app[TELESTRATION])
    # cleanup runs in reverse: the hub and access close before the broadcaster
    app.cleanup_ctx.append(_broadcaster_ctx)
    app.cleanup_ctx.append(_access_ctx)
    app.cleanup_ctx.append(_cluster_ctx)
    app.cleanup_ctx.append(ws.hub_ctx)
    app.cleanup_ctx.append(drawings.telestration_ctx)
    app.on_shutdown.append(ws.on_shutdown)
    app.cleanup_ctx.append(health.health_ctx)
    app.add_routes(whip.routes())
    app.add_routes(whep.routes())
    app.add_routes(hls.routes())
    app.add_routes(privacy.routes())
    app.add_routes(drawings.routes())
    app.add_routes(ws.routes())
    app.add_routes(events.routes())
    app.add_routes(admin.routes())
    app.add_routes(recordings.routes())
    app.add_routes(sources.routes())
    app.add_routes(qa.routes())
    app.add_routes(health.routes())
    app.add_routes([metrics.handler(app)])
    app.add_routes([web.options("/api/{tail:.*}", api_options)])
    app.add_routes(pages.routes())
    app.router.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
    return app
