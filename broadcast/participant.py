"""Who is on a connection: a role with its capabilities, and a display name.

Roles belong to the domain, not to HTTP: the media plane and the Q&A board decide what a
participant may do from these capabilities, whatever protocol carried the request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    ORGANIZER = "organizer"
    TECHNICIAN = "technician"
    FACULTY = "faculty"
    MODERATOR = "moderator"
    HALL = "hall"
    VIEWER = "viewer"


class Capability(enum.StrEnum):
    VIEW = "view"            # play feeds, see the event's theatres and live state
    PUBLISH = "publish"      # send any feed of a theatre (cameras, microphone)
    TALKBACK = "talkback"    # send a talk-back feed (`talkback…`) into a theatre
    RECORD = "record"        # start and stop recordings
    LIBRARY = "library"      # list, play and download recordings (patient video: not for viewers)
    MODERATE = "moderate"    # run the Q&A, put questions on air, set the hall layout
    ASK = "ask"              # ask and vote in the Q&A
    ADMIN = "admin"          # mint and revoke links, see and kick sessions, edit the event


ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.ORGANIZER: frozenset(Capability),
    Role.TECHNICIAN: frozenset({Capability.VIEW, Capability.PUBLISH, Capability.RECORD,
                                Capability.LIBRARY}),
    Role.FACULTY: frozenset({Capability.VIEW, Capability.TALKBACK, Capability.ASK}),
    Role.MODERATOR: frozenset({Capability.VIEW, Capability.MODERATE, Capability.RECORD,
                               Capability.LIBRARY}),
    Role.HALL: frozenset({Capability.VIEW}),
    Role.VIEWER: frozenset({Capability.VIEW, Capability.ASK}),
}

TALKBACK_FEED_PREFIX = "talkback"
ALL_EVENTS = "*"  # an organizer token for every event (minted on the server's command line)


@dataclass(frozen=True)
class Participant:
    """The verified identity behind a connection. Never holds the token itself."""

    event: str                    # event slug, or ALL_EVENTS for a server-wide organizer
    role: Role
    name: str
    token_id: str                 # the token's `jti`: what revocation and limits key on
    theatre: str | None = None    # limits a technician or faculty member to one theatre
    guest: bool = False           # no link: a guest of a public event (token_id is per request)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return ROLE_CAPABILITIES[self.role]

    def can(self, capability: Capability) -> bool:
        return capability in ROLE_CAPABILITIES[self.role]

    def covers_event(self, event: str) -> bool:
        return self.event == event or self.event == ALL_EVENTS

    def covers_theatre(self, theatre: str) -> bool:
        return self.theatre is None or self.theatre == theatre

    def may_send(self, event: str, theatre: str, feed: str) -> bool:
        """May this participant publish `event/theatre/feed`?"""
        if not (self.covers_event(event) and self.covers_theatre(theatre)):
            return False
        if self.can(Capability.PUBLISH):
            return True
        return self.can(Capability.TALKBACK) and feed.startswith(TALKBACK_FEED_PREFIX)

    def may_watch(self, event: str, theatre: str) -> bool:
        # faculty with a theatre still watch the whole event; the theatre limits what they send
        if self.role is Role.TECHNICIAN and not self.covers_theatre(theatre):
            return False
        return self.covers_event(event) and self.can(Capability.VIEW)

    def describe_public(self) -> str:
        """For other people (an error message): role and name, no link id."""
        where = f" of {self.theatre}" if self.theatre else ""
        return f"{self.name!r} ({self.role}{where})"

    def describe(self) -> str:
        """For logs: role and name, never a secret."""
        where = f"@{self.theatre}" if self.theatre else ""
        return f"{self.role}{where} {self.name!r} ({self.token_id[:8]})"
