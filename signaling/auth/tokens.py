"""Signed role tokens (JWT, HS256) and the server's signing secret.

A token names one event, one role, a display name and optionally one theatre. It is
verified with the algorithm pinned to HS256, so `alg: none` and algorithm-confusion tokens
are refused by construction. Revocation is a deny-list kept by the EventStore: a token's
`jti`, or every token of an event minted before the event's current `gen`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from broadcast.participant import ALL_EVENTS, Participant, Role
from broadcast.plaintext import single_line
from broadcast.relay.streampath import is_slug

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "orcast"
SECRET_ENV = "ORCAST_SECRET"
SECRET_FILE = "secret.key"
MIN_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
MAX_NAME_CHARS = 80
MAX_TTL_S = 366 * 24 * 3600
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenError(Exception):
    """A token that cannot be used. `status` is 401 (not valid) or 403 (valid, not allowed)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TokenClaims:
    event: str
    role: Role
    name: str
    jti: str
    exp: int
    iat: int
    gen: int = 0                  # the event's token generation when minted
    theatre: str | None = None
    max_sessions: int | None = None  # per-token cap on live sessions; None: the server default

    def participant(self) -> Participant:
        return Participant(self.event, self.role, self.name, self.jti, self.theatre)


def parse_ttl(text: str) -> int:
    """'90s', '30m', '12h', '7d' or plain seconds → seconds."""
    match = _TTL.match(text.strip().lower())
    if not match:
        raise ValueError(f"TTL {text!r} must be a number with s, m, h or d, like 12h")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_TTL_S:
        raise ValueError(f"TTL {text!r} must be between 1 s and 366 days")
    return seconds


def check_name(name: str) -> str:
    return single_line(name, "a display name", MAX_NAME_CHARS)


def load_secret(data_dir: Path) -> bytes:
    """The signing secret: $ORCAST_SECRET, else `{data_dir}/secret.key` (created once, 0600)."""
    env = os.environ.get(SECRET_ENV)
    if env:
        secret = env.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} characters; "
                             "generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'")
        return secret
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("%s is readable by other users (mode %o); run: chmod 600 %s",
                           path, mode, path)
        secret = path.read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"{path} holds a secret shorter than {MIN_SECRET_BYTES} bytes; "
                             "delete it to generate a new one (every link minted so far stops working)") from None
        return secret
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    logger.info("generated a new signing secret in %s", path)
    return path.read_bytes().strip()


class TokenIssuer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return "TokenIssuer(<secret>)"

    def mint(self, event: str, role: Role, name: str, ttl_s: int, theatre: str | None = None,
             gen: int = 0, max_sessions: int | None = None, now: float | None = None) -> tuple[str, TokenClaims]:
        if event != ALL_EVENTS and not is_slug(event):
            raise ValueError(f"event {event!r} is not a slug")
        if event == ALL_EVENTS and role is not Role.ORGANIZER:
            raise ValueError("only an organizer token may cover every event")
        if theatre is not None and not is_slug(theatre):
            raise ValueError(f"theatre {theatre!r} is not a slug")
        if theatre is not None and role not in (Role.TECHNICIAN, Role.FACULTY):
            raise ValueError("a theatre limits only technician and faculty links")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError("a token lives between 1 s and 366 days")
        if max_sessions is not None and not 0 < max_sessions <= 100_000:
            raise ValueError("max_sessions must be between 1 and 100000")
        iat = int(now if now is not None else time.time())
        claims = TokenClaims(event=event, role=role, name=check_name(name),
                             jti=secrets.token_urlsafe(12), exp=iat + ttl_s,
                             iat=iat, gen=gen, theatre=theatre, max_sessions=max_sessions)
        payload: dict[str, object] = {
            "iss": ISSUER, "event": event, "role": str(role), "name": claims.name,
            "jti": claims.jti, "iat": iat, "exp": claims.exp, "gen": gen,
        }
        if theatre is not None:
            payload["theatre"] = theatre
        if max_sessions is not None:
            payload["max_sessions"] = max_sessions
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def verify(self, token: str) -> TokenClaims:
        """Signature, expiry and claim types. Revocation and event checks come after."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("the token is missing or too long; use the link you were given")
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "iss"]}, leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("this link has expired; ask the organizer for a new one") from None
        except (jwt.InvalidTokenError, RecursionError, UnicodeError, ValueError):
            # RecursionError: a header of `[` × 8000 (PyJWT parses it before the signature)
            raise TokenError("this link is not valid (damaged or not from this server); "
                             "ask the organizer for a new one") from None
        return _claims_from(payload)


def _claims_from(payload: dict[str, object]) -> TokenClaims:
    bad = TokenError("this link is not valid (malformed claims); ask the organizer for a new one")
    event, role, name, jti = (payload.get(k) for k in ("event", "role", "name", "jti"))
    theatre, gen, max_sessions = payload.get("theatre"), payload.get("gen", 0), payload.get("max_sessions")
    exp, iat = payload.get("exp"), payload.get("iat")
    if not (isinstance(event, str) and (event == ALL_EVENTS or is_slug(event))):
        raise bad
    if not isinstance(role, str) or role not in Role.__members__.values():
        raise bad
    if not (isinstance(name, str) and isinstance(jti, str) and 0 < len(jti) <= 64):
        raise bad
    if theatre is not None and not (isinstance(theatre, str) and is_slug(theatre)):
        raise bad
    if not isinstance(gen, int) or isinstance(gen, bool) or not isinstance(exp, int) or not isinstance(iat, int):
        raise bad
    if max_sessions is not None and not (isinstance(max_sessions, int) and max_sessions > 0):
        raise bad
    if event == ALL_EVENTS and role != Role.ORGANIZER:
        raise bad
    try:
        name = check_name(name)
    except ValueError:
        raise bad from None
    return TokenClaims(event=event, role=Role(role), name=name, jti=jti, exp=exp, iat=iat,
                       gen=gen, theatre=theatre, max_sessions=max_sessions)
