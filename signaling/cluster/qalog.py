"""RedisBoardLog: the Q&A boards of a cluster, one per event, shared through Redis.

Why a log in Redis and not a board that fails over: a question is accepted only once Redis has
it, so a node that dies (kill -9) loses nothing that anyone was told, and there is nothing to
elect or hand over — every node is a full copy. Per event, Redis holds a revision counter and a
stream of changes (`broadcast.qa.board.Change`: the changed questions, votes, the moderators'
log, the hall layout). A node decides a command on its own copy and appends the change with
one Lua script that checks the revision it decided on (a vote commutes and is not checked);
if another node's change came first, the command is decided again on the newer board. Every
node — the one that asked included — applies the stream in order to its copy (memory and its
own SQLite, which the exports read) and tells its clients.

A node joining replays the log from the start into an emptied copy; the first node of a
cluster (an empty log) gives its board as the first change, so a board kept by one node is
not lost when it becomes a cluster. Redis should keep its data (`appendonly yes`): if the log
is gone anyway (Redis restarted empty), the first node to notice gives its copy again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from broadcast.qa.board import Board, Change
from broadcast.qa.messages import QaError
from signaling.cluster.rediscluster import RECONNECTING

logger = logging.getLogger(__name__)

REV = "orcast:qa:{}:rev"
LOG = "orcast:qa:{}:log"
READ_BLOCK_MS = 1000
READ_COUNT = 500
RETRY_S = 1.0
# KEYS: rev, log; ARGV: expected revision ("" = any), the change. Returns the new revision,
# or -(the log's revision) - 1 when it was not the expected one.
_APPEND = """
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= rev then return -rev - 1 end
rev = rev + 1
redis.call('SET', KEYS[1], rev)
redis.call('XADD', KEYS[2], '*', 'rev', rev, 'change', ARGV[2])
return rev
"""


class RedisBoardLog:
    def __init__(self, redis_url: str, shown_url: str) -> None:
        self.shown_url = shown_url
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=3.0, socket_connect_timeout=2.0,
                                              decode_responses=True, **RECONNECTING)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._joined: dict[str, asyncio.Event] = {}
        self.applied = 0

    def follow(self, board: Board) -> None:
        """Share `board` with the cluster (QaBoards.on_board)."""
        if board.event in self._tails:
            return
        board.sync = self
        self._joined[board.event] = asyncio.Event()
        self._tails[board.event] = asyncio.get_running_loop().create_task(
            self._tail(board), name=f"Q&A log of {board.event}")

    async def joined(self, event: str, within_s: float) -> bool:
        """Wait until this node's copy of the event's board has caught up with the log."""
        ready = self._joined.get(event)
        if ready is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), within_s)
        return ready.is_set()

    async def close(self) -> None:
        tails, self._tails = list(self._tails.values()), {}
        for task in tails:
            task.cancel()
        for task in tails:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._redis.aclose()

    # -- BoardSync -------------------------------------------------------------------------
    async def submit(self, event: str, change: Change, expected_rev: int | None) -> tuple[bool, int]:
        try:
            result = int(await self._redis.eval(
                _APPEND, 2, REV.format(event), LOG.format(event),
                "" if expected_rev is None else str(expected_rev), json.dumps(change.to_json())))
        except (RedisError, OSError) as exc:
            logger.error("Q&A %s: the cluster's store (Redis at %s) is unreachable: %s", event, self.shown_url,
                         type(exc).__name__)
            raise QaError("storage", "the Q&A cannot reach the cluster's store now; nothing was changed, try "
                                     "again in a moment") from None
        return (True, result) if result > 0 else (False, -result - 1)

    # -- following the log ---------------------------------------------------------------------
    async def _tail(self, board: Board) -> None:
        last_id: str | None = None
        failing = False
        while True:
            try:
                if last_id is None:
                    last_id = await self._join(board)
                    self._joined[board.event].set()
                entries: list[Any] = list(await self._redis.xread(
                    {LOG.format(board.event): last_id}, count=READ_COUNT, block=READ_BLOCK_MS) or [])
                if failing:
                    logger.info("Q&A %s: the cluster's store is back", board.event)
                    failing = False
                if not entries:
                    if await self._log_lost(board):
                        last_id = None
                    continue
                for _stream, items in entries:
                    for entry_id, fields in items:
                        last_id = entry_id
                        self._apply(board, fields)
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("Q&A %s: the cluster's store (Redis at %s) is unreachable (%s): this node's "
                                   "board stays as it is and takes no changes until it is back", board.event,
                                   self.shown_url, type(exc).__name__)
                failing = True
                await asyncio.sleep(RETRY_S)

    def _apply(self, board: Board, fields: dict[str, Any]) -> None:
        try:
            rev, change = int(fields["rev"]), Change.from_json(json.loads(fields["change"]))
        except (KeyError, TypeError, ValueError):
            logger.error("Q&A %s: an entry of the cluster's log could not be read (another ORcast version?); "
                         "skipped", board.event)
            return
        try:
            board.apply_shared(rev, change)
        except Exception:  # one bad entry must not stop the board
            logger.exception("Q&A %s: applying change %d of the cluster's log failed", board.event, rev)
        self.applied += 1

    async def _join(self, board: Board) -> str:
        """Empty this node's copy and replay the log into it (after giving it this node's
        board first, if nobody began the log). Returns the stream position to read on from."""
        event = board.event
        rev = int(await self._redis.get(REV.format(event)) or 0)
        if rev == 0 and (board.questions or board.layout.get("feeds")):
            accepted, _ = await self.submit(event, board.seed(), 0)
            if accepted:
                logger.info("Q&A %s: this node's board (%d questions) begins the cluster's shared board", event,
                            len(board.questions))
        board.store.clear_event(event)
        board.reset()
        last_id = "0"
        replayed = 0
        while True:
            items: list[Any] = list(await self._redis.xrange(
                LOG.format(event), min=f"({last_id}" if last_id != "0" else "-", count=READ_COUNT) or [])
            for entry_id, fields in items:
                last_id = entry_id
                self._apply(board, fields)
                replayed += 1
            if len(items) < READ_COUNT:
                break
        logger.info("Q&A %s: joined the cluster's board at revision %d (%d changes replayed)", event,
                    board.log_rev, replayed)
        return last_id

    async def _log_lost(self, board: Board) -> bool:
        """Redis restarted without its data: the log is shorter than what this node applied."""
        rev = int(await self._redis.get(REV.format(board.event)) or 0)
        if rev >= board.log_rev or board.log_rev == 0:
            return False
        logger.warning("Q&A %s: the cluster's log is gone (Redis restarted without its data? keep it with "
                       "appendonly yes); this node gives its copy of the board again", board.event)
        accepted, _ = await self.submit(board.event, board.seed(), 0)
        if not accepted:
            logger.info("Q&A %s: another node gave its copy first; this node follows it", board.event)
        return True
