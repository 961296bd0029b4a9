"""The demo: an event with two synthetic OR feeds (encoded once, cached) and a link per role,
so a newcomer sees a live stream in the browser at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from broadcast.participant import ALL_EVENTS, Role
from broadcast.relay.streampath import StreamPath
from broadcast.sources.clipcache import cached_clip
from broadcast.sources.synthetic import SyntheticFeed
from signaling.auth.links import mint_link, server_base
from signaling.config.settings import ServerConfig
from signaling.keys import ACCESS, BROADCASTER
from signaling.store.eventstore import Event, Theatre

DEMO_FEEDS = (
    # path, codec, width, height
    ("demo/or1/endoscope", "H264", 1280, 720),
    ("demo/or1/room", "VP8", 640, 360),
)
DEMO_EVENT = Event(
    slug="demo", title="ORcast demo course",
    theatres=(Theatre("or1", "OR 1"), Theatre("or2", "OR 2"), Theatre("podium", "Podium")),
    source="demo",
)
DEMO_LINKS: tuple[tuple[Role, str, str | None], ...] = (
    (Role.VIEWER, "Demo viewer", None),
    (Role.TECHNICIAN, "OR 2 technician", "or2"),
    (Role.FACULTY, "Demo faculty", None),
    (Role.MODERATOR, "Demo moderator", None),
    (Role.HALL, "Hall display", None),
    (Role.ORGANIZER, "Demo organizer", None),
)


async def add_demo(app: web.Application, config: ServerConfig) -> None:
    """The demo event and its synthetic feeds (published while the app runs)."""
    if app[ACCESS].store.get(DEMO_EVENT.slug) is None:
        app[ACCESS].store.put_event(DEMO_EVENT)
    feeds = []
    for path, codec, width, height in DEMO_FEEDS:
        started = time.monotonic()
        clip, cached = await asyncio.to_thread(cached_clip, config.data_dir / "cache", codec, width, height)
        how = "from the cache" if cached else "encoded once, kept for the next start"
        print(f"  synthetic feed {path} ({codec} {width}x{height}) {how} "
              f"in {time.monotonic() - started:.1f} s", flush=True)
        feeds.append((StreamPath.parse(path), SyntheticFeed(clip, "synthetic")))
    app.cleanup_ctx.append(_demo_ctx(feeds))


def _demo_ctx(feeds: list[tuple[StreamPath, SyntheticFeed]]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        broadcaster = app[BROADCASTER]
        for path, feed in feeds:
            stream = broadcaster.attach_source(path, (feed, feed.clip.codec), feed,
                                               h264_profile=feed.clip.h264_profile)
            feed.start(stream.video, stream.audio)
        yield
        for path, feed in feeds:
            await feed.stop()
            broadcaster.detach_source(path)

    return ctx


def print_demo_links(app: web.Application, config: ServerConfig) -> None:
    access = app[ACCESS]
    base = server_base(config)
    print("  Links (each opens that role's page; they stay valid for 12 h):", flush=True)
    organizer_token = ""
    for role, name, theatre in DEMO_LINKS:
        event = ALL_EVENTS if role is Role.ORGANIZER else DEMO_EVENT.slug
        token, link, _ = mint_link(access.store, access.issuer, base, event, role, name,
                                   config.default_ttl_s, theatre, minted_by="orcast demo")
        organizer_token = token if role is Role.ORGANIZER else organizer_token
        print(f"  {role.value:<11} {link}", flush=True)
    print(f"  {'recordings':<11} {base}/recordings/{DEMO_EVENT.slug}#token={organizer_token}", flush=True)
    print(f"  Watch the synthetic OR feed with the viewer link. Base: {base}", flush=True)
