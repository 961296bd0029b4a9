"""QaSession: a WebRTC connection that carries only the `qa` data channel.

For a moderator's desk or a phone that follows the Q&A without playing a feed. Viewers,
hall displays and technician consoles open the same channel on their media connections.
"""

from __future__ import annotations

from broadcast.participant import Participant
from broadcast.webrtc.sdpoffer import ShapedOffer
from broadcast.webrtc.session import PeerSession, SessionSettings


class QaSession(PeerSession):
    role = "qa"

    def __init__(self, event: str, settings: SessionSettings, participant: Participant | None = None) -> None:
        super().__init__(None, settings, participant, event=event)
        self.protocol = "qa"

    async def start(self, shaped: ShapedOffer) -> str:
        return await self._negotiate(shaped, lambda: None)
