"""Chromium's own WebRTC stack on the `qa` channel: libwebrtc's SCTP against aiortc's, a question
asked from the browser and the on-air update received there."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.support.chromium import chromium, collect_console_errors
from tests.support.qaclient import joined

JOIN_JS = """async ([token, text]) => {
  const pc = new RTCPeerConnection();
  const channel = pc.createDataChannel('qa');
  const got = [];
  window.qaTest = {pc, channel, got};
  channel.onmessage = (e) => got.push(JSON.parse(e.data));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    setTimeout(resolve, 3000);
  });
  const resp = await fetch('/qa/course', {method: 'POST', body: pc.localDescription.sdp,
    headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token}});
  if (resp.status !== 201) return {status: resp.status, body: await resp.text()};
  await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
  await new Promise((resolve, reject) => {
    channel.onopen = resolve;
    setTimeout(() => reject(new Error('qa channel did not open')), 15000);
  });
  const until = (test) => new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => { const m = got.find(test); if (m) resolve(m);
      else if (Date.now() - started > 10000) reject(new Error('no reply')); else setTimeout(poll, 20); };
    poll();
  });
  await until((m) => m.type === 'snapshot' && m.part === m.parts);
  channel.send(JSON.stringify({type: 'ask', ref: 'from-chromium', text, theatre: 'or1'}));
  const ack = await until((m) => m.ref === 'from-chromium');
  return {status: 201, welcome: got[0], ack};
}"""


async def test_chromium_asks_and_sees_its_question_on_air(server: RunningServer) -> None:
    mod = await joined(server.http, server.base, "course", server.token("moderator"))
    text = "<img src=x onerror=alert(1)> Why clamp the portal pedicle now?"
    async with chromium() as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await page.goto(f"{server.base}/watch/course")  # any page of the server's origin
        result = await page.evaluate(JOIN_JS, [server.token("viewer", name="Dr Chromium"), text])
        assert result["status"] == 201, result
        assert result["welcome"]["type"] == "welcome" and result["welcome"]["you"]["name"] == "Dr Chromium"
        assert result["ack"]["type"] == "ack", result["ack"]
        qid = result["ack"]["question"]
        await mod.wait_until(lambda: qid in mod.questions, what="the moderator sees the browser's question")
        assert mod.questions[qid]["text"] == text  # stored as text; pages render it as text only
        await mod.ok("approve", question=qid)
        await mod.ok("on_air", question=qid)
        await page.wait_for_function(
            "(id) => window.qaTest.got.some((m) => m.type === 'on_air' && m.slots.or1 && m.slots.or1.id === id)",
            arg=qid, timeout=10_000)
        state = await page.evaluate("window.qaTest.got.filter((m) => m.type === 'question').pop().question.state")
        assert state == "on_air"
        await page.evaluate("window.qaTest.pc.close()")
        assert not [e for e in errors if "qa" in e.lower()], errors
