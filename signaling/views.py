"""What each participant is shown of the media plane's state (the REST API and the live hub
both answer with it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from broadcast.participant import Participant
from broadcast.relay.stream import StreamInfo


def visible_streams(infos: list[StreamInfo], who: Participant, event: str) -> list[dict[str, Any]]:
    """The event's feeds this participant may watch (a technician: its own theatre's)."""
    out = []
    for info in infos:
        ev, theatre, _ = info.path.split("/")
        if ev == event and who.may_watch(event, theatre):
            out.append(dataclasses.asdict(info))
    return out
