"""`/metrics` in the Prometheus text format (prometheus-client).

Read at scrape time from the media plane's own counters, so the relay's hot path carries no
metric code; only viewers' join times are observed as they happen (a histogram).

Who may scrape: with `[metrics] port`, a separate listener (default on 127.0.0.1) serves only
`/metrics` and the main port has none; with `[metrics] token`, a scraper sends
`Authorization: Bearer <token>`; with neither, a server-wide organizer link is needed.
Labels name stream paths (`event/theatre/feed`) and event slugs, never people.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broadcast.broadcaster import Broadcaster
from broadcast.participant import ALL_EVENTS, Capability
from broadcast.relay.producer import NetworkReader
from signaling.auth.access import bearer_token
from signaling.cluster.node import ClusterNode
from signaling.keys import ACCESS, CONFIG, METRICS
from signaling.telestration import Telestration

JOIN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
RECORDING_STATES = ("off", "waiting", "starting", "recording", "stopped", "failed")


class MediaCollector(Collector):
    """Feeds, viewers, rates, drops, keyframe requests, recordings, Q&A and peer connections."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.broadcaster = broadcaster

    def collect(self) -> Iterator[Metric]:
        b = self.broadcaster
        live = GaugeMetricFamily("orcast_feeds_live", "Feeds with a publisher now", labels=["event"])
        viewers = GaugeMetricFamily("orcast_feed_viewers", "Viewer sessions per feed", labels=["path"])
        low_readers = GaugeMetricFamily("orcast_feed_low_viewers", "Viewers of the feed's low rendition",
                                        labels=["path"])
        low_made = GaugeMetricFamily("orcast_feed_low_encoding", "1 while the server makes the feed's low rendition "
                                     "(one decode and encode)", labels=["path"])
        low_bytes = CounterMetricFamily("orcast_feed_low_sent_bytes", "Bytes of the low rendition sent to viewers",
                                        labels=["path"])
        rate_in = GaugeMetricFamily("orcast_feed_bitrate_in_bps", "Bits per second received", labels=["path"])
        rate_out = GaugeMetricFamily("orcast_feed_bitrate_out_bps", "Bits per second sent to viewers", labels=["path"])
        bytes_in = CounterMetricFamily("orcast_feed_received_bytes", "Media bytes received", labels=["path", "kind"])
        bytes_out = CounterMetricFamily("orcast_feed_sent_bytes", "Media bytes sent to viewers",
                                        labels=["path", "kind"])
        frames_in = CounterMetricFamily("orcast_feed_received_frames", "Frames received (video frames, audio "
                                        "packets)", labels=["path", "kind"])
        dropped = CounterMetricFamily("orcast_feed_dropped_frames", "Frames the viewers of a feed skipped "
                                      "because they fell behind (summed over its consumers)", labels=["path", "kind"])
        keyframes = CounterMetricFamily("orcast_feed_keyframe_requests", "Keyframe requests sent to the publisher",
                                        labels=["path"])
        per_event: Counter[str] = Counter()
        for path, stream in sorted(b.streams.items(), key=lambda item: str(item[0])):
            name = str(path)
            if stream.live:
                per_event[path.event] += 1
            viewers.add_metric([name], len(stream.viewers))
            rate_in.add_metric([name], stream.bitrate_in)
            rate_out.add_metric([name], stream.bitrate_out)
            for producer in stream.producers:
                bytes_in.add_metric([name, producer.kind], producer.bytes_in)
                bytes_out.add_metric([name, producer.kind], producer.bytes_out)
                frames_in.add_metric([name, producer.kind], producer.frames_in)
                dropped.add_metric([name, producer.kind], producer.frames_dropped)
            keyframes.add_metric([name], stream.video.keyframe_requests_sent)
            renditions = stream.renditions
            low_readers.add_metric([name], sum(isinstance(r, NetworkReader) for r in renditions.low.readers))
            low_made.add_metric([name], 1 if renditions.maker is not None else 0)
            low_bytes.add_metric([name], renditions.low.bytes_out)
        for event, count in sorted(per_event.items()):
            live.add_metric([event], count)
        yield from (live, viewers, rate_in, rate_out, bytes_in, bytes_out, frames_in, dropped, keyframes,
                    low_readers, low_made, low_bytes)
        yield from self._sources()
        yield from self._recordings()
        yield from self._qa()
        yield from self._sessions()

    def _sources(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("orcast_source_up", "1 while a pulled source (IP camera, other server) sends",
                               labels=["path", "kind"])
        reconnects = CounterMetricFamily("orcast_source_reconnects", "Times a pulled source was pulled again",
                                         labels=["path"])
        transcoding = GaugeMetricFamily("orcast_source_transcoding", "1 for each medium a pulled source's server "
                                        "transcodes (once per feed)", labels=["path", "kind"])
        for path, source in sorted(self.broadcaster.pulled.items(), key=lambda item: str(item[0])):
            name = str(path)
            up.add_metric([name, source.settings.kind], 1 if source.state == "live" else 0)
            reconnects.add_metric([name], source.reconnects)
            if source.video_transcoded_from:
                transcoding.add_metric([name, "video"], 1)
            if source.audio_transcoded_from and source.audio_transcoded_from != "opus":
                transcoding.add_metric([name, "audio"], 1)
        yield from (up, reconnects, transcoding)

    def _recordings(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("orcast_recording_state", "1 for the feed's current recording state",
                                  labels=["path", "state"])
        size = GaugeMetricFamily("orcast_recording_bytes", "Bytes in the feed's current recording",
                                 labels=["path"])
        dropped = GaugeMetricFamily("orcast_recording_dropped_frames", "Frames the recorder could not write "
                                    "in time (current recording)", labels=["path"])
        for status in self.broadcaster.recordings.statuses():
            for name in RECORDING_STATES:
                state.add_metric([status.path, name], 1 if status.state == name else 0)
            size.add_metric([status.path], status.size_bytes)
            dropped.add_metric([status.path], status.frames_dropped)
        yield from (state, size, dropped)

    def _qa(self) -> Iterator[Metric]:
        questions = GaugeMetricFamily("orcast_qa_questions", "Questions on the board by state",
                                      labels=["event", "state"])
        clients = GaugeMetricFamily("orcast_qa_clients", "Connections following the Q&A", labels=["event"])
        for event, board in sorted(self.broadcaster.qa.boards.items()):
            by_state = Counter(q.shown_state for q in board.questions.values())
            for name, count in sorted(by_state.items()):
                questions.add_metric([event, name], count)
            clients.add_metric([event], len(board.clients))
        yield from (questions, clients)

    def _sessions(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("orcast_peer_connections", "WebRTC sessions by kind and connection state",
                                     labels=["kind", "state"])
        counts = Counter((s.role, s.connection_state) for s in self.broadcaster.sessions.values())
        for (kind, state), count in sorted(counts.items()):
            sessions.add_metric([kind, state], count)
        yield sessions
        workers = GaugeMetricFamily("orcast_worker_viewer_sessions", "Viewer sessions each process holds "
                                    "(worker 0 is the front, which also holds publishers and the Q&A)",
                                    labels=["worker"])
        up = GaugeMetricFamily("orcast_worker_up", "1 while the worker process takes viewers", labels=["worker"])
        restarts = CounterMetricFamily("orcast_worker_restarts", "Times a worker process was restarted",
                                       labels=["worker"])
        for row in self.broadcaster.worker_rows():
            index = str(row["index"])
            workers.add_metric([index], row["viewers"])
            up.add_metric([index], 1 if row["ready"] else 0)
            restarts.add_metric([index], row["restarts"])
        yield from (workers, up, restarts)


class TelestrationCollector(Collector):
    """Drawing on the pictures: messages taken, dropped (a page over its rate), refused (a link
    that may not draw), strokes on the pictures now, and annotations written."""

    def __init__(self, telestration: Telestration) -> None:
        self.telestration = telestration

    def collect(self) -> Iterator[Metric]:
        t = self.telestration
        for name, value, text in (
                ("orcast_draw_messages", t.messages, "Drawing messages taken and sent to the pages of their feed"),
                ("orcast_draw_dropped", t.dropped, "Drawing messages dropped: a page sent more than its rate"),
                ("orcast_draw_refused", t.refused, "Drawing messages from links that may not draw there"),
                ("orcast_annotations_written", t.log.written if t.log else 0,
                 "Annotations kept next to the recordings")):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
        strokes = GaugeMetricFamily("orcast_draw_strokes", "Strokes on the pictures now (not yet faded)")
        strokes.add_metric([], sum(len(b.strokes) for b in t.boards.values()))
        yield strokes


class HlsCollector(Collector):
    """The feeds made into LL-HLS now, and what their players (or the caches in front) fetch."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.broadcaster = broadcaster

    def collect(self) -> Iterator[Metric]:
        feeds = self.broadcaster.hls.feeds
        on = GaugeMetricFamily("orcast_hls_feeds", "Feed variants whose LL-HLS muxer runs (someone asked in the "
                               "last 30 s)")
        on.add_metric([], len(feeds))
        answers = CounterMetricFamily("orcast_hls_responses", "HLS answers given, by kind (playlist, blocking "
                                      "reload, part, segment, init)", labels=["path", "variant", "kind"])
        most = GaugeMetricFamily("orcast_hls_part_serves_max", "The most times one recent part was sent: about "
                                 "the number of players without a shared cache, 1-2 with one",
                                 labels=["path", "variant"])
        parts = CounterMetricFamily("orcast_hls_parts", "Parts muxed", labels=["path", "variant"])
        dropped = CounterMetricFamily("orcast_hls_dropped_frames", "Frames the HLS muxer dropped because it fell "
                                      "behind (it starts again on a keyframe)", labels=["path", "variant"])
        for (path, variant), hls in sorted(feeds.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            for kind in ("playlist", "blocking", "part", "segment", "init"):
                answers.add_metric([str(path), variant, kind], hls.responses[kind])
            most.add_metric([str(path), variant], hls.most_serves_of_a_part)
            parts.add_metric([str(path), variant], hls.muxer.parts)
            dropped.add_metric([str(path), variant], hls.muxer.frames_dropped)
        yield from (on, answers, most, parts, dropped)


class ClusterCollector(Collector):
    """This node's view of its cluster (nothing without [cluster])."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        cluster = self.node.cluster
        if not cluster.enabled:
            return
        nodes = GaugeMetricFamily("orcast_cluster_nodes", "Nodes of the cluster this node sees (itself too)")
        nodes.add_metric([], len(cluster.nodes()))
        remote = GaugeMetricFamily("orcast_cluster_remote_feeds", "Live feeds whose source is on another node")
        remote.add_metric([], len(cluster.remote_feeds()))
        pulls = GaugeMetricFamily("orcast_cluster_pulls", "Feeds this node pulls from other nodes now",
                                  labels=["path"])
        for path in sorted(self.node.pulls):
            pulls.add_metric([path], 1 if self.node.pull_running(path) else 0)
        up = GaugeMetricFamily("orcast_cluster_redis_up", "1 while this node reaches the cluster's Redis")
        up.add_metric([], 1 if cluster.reachable else 0)
        yield from (nodes, remote, pulls, up)


def make_registry(broadcaster: Broadcaster, node: ClusterNode | None = None,
                  telestration: Telestration | None = None) -> CollectorRegistry:
    """A registry for one server (no process-wide default registry: two apps in one process
    — the tests — keep their own figures)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MediaCollector(broadcaster))
    registry.register(HlsCollector(broadcaster))
    if telestration is not None:
        registry.register(TelestrationCollector(telestration))
    if node is not None:
        registry.register(ClusterCollector(node))
    joins = Histogram("orcast_viewer_join_seconds", "From a viewer's accepted offer to its first video frame",
                      buckets=JOIN_BUCKETS, registry=registry)
    broadcaster.join_listeners.append(joins.observe)
    return registry


def _allowed(request: web.Request, main_app: web.Application) -> None:
    config = main_app[CONFIG]
    if config.metrics_port is not None and request.app is main_app:
        raise web.HTTPNotFound(text=f"metrics are served on port {config.metrics_port}\n")
    token = bearer_token(request)
    if config.metrics_token is not None:
        if token is None or not hmac.compare_digest(token.encode(), config.metrics_token.encode()):
            raise web.HTTPUnauthorized(text="send the metrics token as 'Authorization: Bearer …'\n",
                                       headers={"WWW-Authenticate": 'Bearer realm="orcast-metrics"'})
        return
    if config.metrics_port is not None:
        return  # a separate listener, bound where the operator chose
    who = main_app[ACCESS].identify_any(request).participant
    if who.event != ALL_EVENTS or not who.can(Capability.ADMIN):
        raise web.HTTPForbidden(text="metrics need the metrics token or a server-wide organizer link\n")


def handler(main_app: web.Application) -> web.RouteDef:
    async def metrics(request: web.Request) -> web.Response:
        _allowed(request, main_app)
        body = generate_latest(main_app[METRICS])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

    return web.get("/metrics", metrics)


def metrics_app(main_app: web.Application) -> web.Application:
    """The separate listener's application: `/metrics` only."""
    app = web.Application()
    app.add_routes([handler(main_app)])
    return app
