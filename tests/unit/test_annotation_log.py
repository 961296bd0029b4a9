"""The annotation log: lines kept per feed next to its recordings, a torn line skipped, the
feeds of an event found, and the recordings' retention applied to what was drawn on them."""

from __future__ import annotations

from pathlib import Path

from broadcast.relay.streampath import StreamPath
from broadcast.telestration.annotationlog import FILE_NAME, AnnotationLog

OR1 = StreamPath("course", "or1", "endoscope")
OR2 = StreamPath("course", "or2", "room")


def test_lines_are_kept_per_feed_and_read_back_with_what_is_pending(tmp_path: Path) -> None:
    log = AnnotationLog(tmp_path)
    log.record(OR1, {"type": "stroke", "id": "a", "ended_at": 100.0})
    assert log.read(OR1) == [{"type": "stroke", "id": "a", "ended_at": 100.0}]  # not written yet, still read
    log.flush()
    log.record(OR1, {"type": "undo", "id": "a", "at": 101.0})
    log.record(OR2, {"type": "clear", "at": 102.0})
    log.flush()
    assert (tmp_path / "course" / "or1" / "endoscope" / FILE_NAME).is_file()
    assert [i["type"] for i in log.read(OR1)] == ["stroke", "undo"] and log.written == 3
    assert log.feeds("course") == [OR1, OR2] and log.feeds("other") == [] and log.feeds("../x") == []


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    log = AnnotationLog(tmp_path)
    log.record(OR1, {"type": "stroke", "id": "a", "ended_at": 1.0})
    log.flush()
    with log.file(OR1).open("a") as out:
        out.write('{"type": "stroke", "id": "b", "poi')  # the power went mid-write
    log.record(OR1, {"type": "stroke", "id": "c", "ended_at": 2.0})
    log.flush()
    assert [i["id"] for i in log.read(OR1)] == ["a", "c"]  # the torn line alone is lost
    assert log.file(OR1).read_text().count("\n") == 3  # no empty lines in between


def test_retention_removes_what_is_older_than_the_recordings_keep(tmp_path: Path) -> None:
    log = AnnotationLog(tmp_path)
    day = 86400.0
    log.record(OR1, {"type": "stroke", "id": "old", "ended_at": 1000.0})
    log.record(OR1, {"type": "clear", "at": 1000.0 + 2 * day})
    log.record(OR2, {"type": "stroke", "id": "new", "ended_at": 1000.0 + 2 * day})
    log.flush()
    assert log.expire(1.0, now=1000.0 + 2.5 * day) == 1
    assert [i["type"] for i in log.read(OR1)] == ["clear"] and [i["id"] for i in log.read(OR2)] == ["new"]
    assert log.expire(1.0, now=1000.0 + 2.5 * day) == 0
