"""The control plane's WHEP client, for feeds pulled from another server (broadcast/webrtc/
wheppull.py holds the media side): POST the offer with the source's bearer token, DELETE
the session when done. The token is sent, never logged or shown."""

from __future__ import annotations

import urllib.parse

import aiohttp

from broadcast.sources.pulled import PullSettings
from broadcast.webrtc.wheppull import Hangup, PullRefused, Signal

TIMEOUT = aiohttp.ClientTimeout(total=10)
_REFUSALS = {
    401: "refused the token (401); give the source a valid bearer token for that server",
    403: "refused this token for that feed (403); ask that server's organizer for a viewer link of it",
    404: "has no WHEP endpoint at this url (404); check the url (…/whep/event/theatre/feed)",
    409: "has no live feed there yet (409); the pull retries until it is live",
    503: "is full or starting (503); the pull retries",
}


def whep_client(settings: PullSettings) -> tuple[Signal, Hangup]:
    headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
    shown = settings.shown_url

    async def signal(offer: str) -> tuple[str, str | None]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.post(
                settings.url, data=offer, headers={"Content-Type": "application/sdp", **headers}) as resp:
            if resp.status != 201:
                why = _REFUSALS.get(resp.status, f"answered HTTP {resp.status}")
                raise PullRefused(f"{shown} {why}")
            if not resp.content_type.startswith("application/sdp"):
                raise PullRefused(f"{shown} answered with {resp.content_type}, not an SDP answer; is it a WHEP url?")
            answer = await resp.text()
            location = resp.headers.get("Location")
            return answer, urllib.parse.urljoin(settings.url, location) if location else None

    async def hangup(session_url: str) -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.delete(session_url, headers=headers):
            pass

    return signal, hangup
