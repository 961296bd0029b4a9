"""What the pages take from the server and from their HTML, checked without a browser.

`web/lib/model.js` restates rules the server checks (slug, talk-back prefix, layouts, recording
states, Q&A limits): it is imported with Node and compared with the Python constants, so a change
on one side fails here. Each page looks its elements up with `byId(id, Type)`: every such id
must exist in the page's HTML as that kind of element.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from broadcast.participant import TALKBACK_FEED_PREFIX
from broadcast.qa.messages import LAYOUT_TILES, MAX_REASON_CHARS, MAX_TEXT_CHARS
from broadcast.recording.recorder import RecorderState
from broadcast.relay.streampath import SLUG

WEB = Path(__file__).resolve().parents[2] / "web"

TAG_OF_TYPE = {
    "HTMLSelectElement": "select", "HTMLInputElement": "input", "HTMLTextAreaElement": "textarea",
    "HTMLButtonElement": "button", "HTMLVideoElement": "video", "HTMLAnchorElement": "a",
    "HTMLFormElement": "form", "HTMLTemplateElement": "template",
}


def model_js() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to check web/lib/model.js: run ./scripts/test.sh (it installs it)")
    script = (
        f"const m = await import({json.dumps((WEB / 'lib' / 'model.js').as_uri())});"
        "console.log(JSON.stringify({slug: m.SLUG.source, prefix: m.TALKBACK_PREFIX, tiles: m.LAYOUT_TILES,"
        " recordingOn: m.RECORDING_ON, qa: m.QA_DEFAULTS,"
        " slugs: ['or1', 'a', '-x', 'OR1', 'x'.repeat(63), 'x'.repeat(64), 'or 1'].map(m.isSlug),"
        " talkback: ['or1/talkback', 'or1/talkback-2', 'or1/endoscope', 'talkback'].map(m.isTalkback)}));"
    )
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_model_js_states_the_servers_rules() -> None:
    model = model_js()
    assert model["slug"] == f"^{SLUG.pattern}$"
    samples = ["or1", "a", "-x", "OR1", "x" * 63, "x" * 64, "or 1"]
    assert model["slugs"] == [SLUG.fullmatch(s) is not None for s in samples]
    assert model["prefix"] == TALKBACK_FEED_PREFIX
    assert model["talkback"] == [True, True, False, False]
    assert model["tiles"] == LAYOUT_TILES
    on = {RecorderState.WAITING, RecorderState.STARTING, RecorderState.RECORDING}
    assert set(model["recordingOn"]) == {str(s) for s in on}
    assert set(model["recordingOn"]) <= {str(s) for s in RecorderState}
    assert model["qa"] == {"text_chars": MAX_TEXT_CHARS, "reason_chars": MAX_REASON_CHARS}


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                assert value not in self.tags, f"id {value!r} is used twice"
                self.tags[value] = tag


@pytest.mark.parametrize("page", sorted(p.stem for p in WEB.glob("*.js")))
def test_pages_look_up_elements_their_html_has(page: str) -> None:
    parser = _Ids()
    parser.feed((WEB / f"{page}.html").read_text())
    lookups = re.findall(r'byId\("([^"]+)", (HTML\w*Element)\)', (WEB / f"{page}.js").read_text())
    assert lookups, f"{page}.js looks up no element with byId"
    for element_id, type_name in lookups:
        assert element_id in parser.tags, f"{page}.js wants #{element_id}, which {page}.html does not have"
        wanted = TAG_OF_TYPE.get(type_name)
        if wanted:
            found = parser.tags[element_id]
            assert found == wanted, f"#{element_id} in {page}.html is a <{found}>, not {type_name}"
