"""The rules of a feed's drawing board, without sockets: what a page may send, fading, pins,
undo (one's own), clear, strokes a page left open, the cap per feed, and what is kept."""

from __future__ import annotations

from typing import Any

import pytest

from broadcast.telestration.board import LASER_FADE_S, MAX_STROKES, OPEN_STROKE_S, Drawer, DrawingBoard
from broadcast.telestration.stroke import StrokeError

WEBER = Drawer("ws-a", "jti-weber", "Prof. Weber")
KIM = Drawer("ws-b", "jti-kim", "Moderator Kim")


def begin(sid: str, kind: str = "free", points: list[list[float]] | None = None, **more: Any) -> dict[str, Any]:
    return {"op": "begin", "id": sid, "kind": kind, "color": "#ffd400", "width": 2,
            "points": points if points is not None else [[0.1, 0.1]], **more}


def board_with_log() -> tuple[DrawingBoard, list[dict[str, Any]]]:
    kept: list[dict[str, Any]] = []
    return DrawingBoard("course/or1/endoscope", kept.append), kept


def test_a_stroke_is_begun_added_to_ended_and_kept_with_its_media_time() -> None:
    board, kept = board_with_log()
    op = board.apply(WEBER, begin("s1"), 100.0, lambda: 5000.25)
    assert op["stroke"]["id"] == "ws-a.s1" and op["stroke"]["by"] == "Prof. Weber"
    op = board.apply(WEBER, {"op": "add", "id": "s1", "points": [[0.123456, 0.2], [1.01, -0.01]], "end": True},
                     100.5, lambda: None)
    assert op["points"] == [[0.1235, 0.2], [1.0, 0.0]]  # rounded, clamped at the picture's edge
    assert kept == [{"type": "stroke", **board.strokes["ws-a.s1"].to_json(), "ended_at": 100.5}]
    assert kept[0]["media_time"] == 5000.25 and kept[0]["points"] == [[0.1, 0.1], [0.1235, 0.2], [1.0, 0.0]]
    with pytest.raises(StrokeError, match="has ended"):
        board.apply(WEBER, {"op": "add", "id": "s1", "points": [[0.3, 0.3]]}, 101.0, lambda: None)
    with pytest.raises(StrokeError, match="begun already"):
        board.apply(WEBER, begin("s1"), 101.0, lambda: None)
    board.apply(KIM, begin("s1"), 101.0, lambda: None)  # another page's s1 is another stroke
    assert set(board.strokes) == {"ws-a.s1", "ws-b.s1"}


def test_an_arrow_and_a_circle_keep_two_points_the_last_one_moves() -> None:
    board, _ = board_with_log()
    board.apply(WEBER, begin("a", "arrow", [[0.2, 0.2]]), 1.0, lambda: None)
    op = board.apply(WEBER, {"op": "add", "id": "a", "points": [[0.5, 0.5]]}, 1.1, lambda: None)
    op = board.apply(WEBER, {"op": "add", "id": "a", "points": [[0.6, 0.7]], "end": True}, 1.2, lambda: None)
    assert op["replace"] == [[0.2, 0.2], [0.6, 0.7]] and board.strokes["ws-a.a"].points == [(0.2, 0.2), (0.6, 0.7)]


def test_strokes_fade_unless_pinned_and_a_laser_fades_fast() -> None:
    board, _ = board_with_log()
    board.apply(WEBER, begin("s", end=True), 10.0, lambda: None)
    board.apply(WEBER, begin("p", pinned=True, end=True), 10.0, lambda: None)
    board.apply(WEBER, begin("l", "laser", end=True), 10.0, lambda: None)
    assert len(board.snapshot(10.0 + LASER_FADE_S / 2, 8.0)) == 3
    assert {s["id"] for s in board.snapshot(10.0 + LASER_FADE_S + 0.1, 8.0)} == {"ws-a.s", "ws-a.p"}
    assert {s["id"] for s in board.snapshot(18.5, 8.0)} == {"ws-a.p"}
    with pytest.raises(StrokeError, match="no such stroke"):  # a page names its own strokes: KIM's "p" is none
        board.apply(KIM, {"op": "pin", "id": "p", "pinned": False}, 19.0, lambda: None)
    board.apply(WEBER, {"op": "pin", "id": "p", "pinned": False}, 19.0, lambda: None)
    assert board.snapshot(100.0, 8.0) == []


def test_undo_takes_back_ones_own_last_stroke_and_clear_takes_all() -> None:
    board, kept = board_with_log()
    for n, who in enumerate((WEBER, KIM, WEBER)):
        board.apply(who, begin(f"s{n}", end=True), float(n), lambda: None)
    op = board.apply(KIM, {"op": "undo"}, 5.0, lambda: 42.0)
    assert op == {"op": "undo", "id": "ws-b.s1"}
    with pytest.raises(StrokeError, match="nothing of yours"):
        board.apply(KIM, {"op": "undo"}, 5.0, lambda: None)
    assert board.apply(WEBER, {"op": "undo"}, 6.0, lambda: None)["id"] == "ws-a.s2"
    board.apply(KIM, {"op": "clear"}, 7.0, lambda: 43.0)
    assert board.strokes == {}
    assert [k["type"] for k in kept] == ["stroke", "stroke", "stroke", "undo", "undo", "clear"]
    assert kept[3]["media_time"] == 42.0 and kept[3]["by"] == "Moderator Kim"


def test_a_stroke_left_open_ends_by_itself_and_a_page_that_leaves_ends_its_strokes() -> None:
    board, kept = board_with_log()
    board.apply(WEBER, begin("a"), 0.0, lambda: None)
    board.apply(KIM, begin("b"), 0.0, lambda: None)
    board.end_connection("ws-b", 1.0)
    assert [k["id"] for k in kept] == ["ws-b.b"]
    board.prune(OPEN_STROKE_S + 1, 8.0)
    assert [k["id"] for k in kept] == ["ws-b.b", "ws-a.a"]


def test_a_feed_holds_at_most_max_strokes_the_oldest_unpinned_go() -> None:
    board, _ = board_with_log()
    board.apply(WEBER, begin("keep", pinned=True, end=True), 0.0, lambda: None)
    for n in range(MAX_STROKES + 5):
        board.apply(KIM, begin(f"s{n}", end=True), 1.0 + n, lambda: None)
    assert len(board.strokes) == MAX_STROKES and "ws-a.keep" in board.strokes and "ws-b.s0" not in board.strokes


@pytest.mark.parametrize("message, error", [
    (begin("x", points=[[0.1, 0.1]] * 65), "at most 64"),
    ({"op": "begin", "id": "x", "kind": "free", "color": "#ffd400", "width": True, "points": []}, "'width'"),
    ({"op": "begin", "id": "x", "kind": "free", "color": "red", "points": []}, "palette"),
    (begin("x", points=[[float("nan"), 0.1]]), "two numbers"),
    (begin("x", points=[[True, 0.1]]), "two numbers"),
    (begin("x", points=[[0.1]]), "two numbers"),
    (begin("x" * 33), "'id'"),
    ({"op": "pin", "id": "x", "pinned": "yes"}, "no such stroke"),
])
def test_what_a_page_may_not_send(message: dict[str, Any], error: str) -> None:
    board, kept = board_with_log()
    with pytest.raises(StrokeError, match=error):
        board.apply(WEBER, message, 0.0, lambda: None)
    assert board.strokes == {} and kept == []


def test_a_free_stroke_has_at_most_2000_points() -> None:
    board, _ = board_with_log()
    board.apply(WEBER, begin("long", points=[[0.5, 0.5]] * 64), 0.0, lambda: None)
    for _ in range(30):
        board.apply(WEBER, {"op": "add", "id": "long", "points": [[0.5, 0.5]] * 64}, 0.0, lambda: None)
    with pytest.raises(StrokeError, match="at most 2000"):
        board.apply(WEBER, {"op": "add", "id": "long", "points": [[0.5, 0.5]] * 64}, 0.0, lambda: None)
