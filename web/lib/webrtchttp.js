// @ts-check
// WHIP/WHEP client: one POST with a complete offer, DELETE to leave (RFC 9725, WHEP draft).

const GATHER_TIMEOUT_MS = 2000;

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class HttpError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Sends the offer of `pc` to `url`; applies the answer; returns the session URL.
export async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  const body = await response.text();
  if (response.status !== 201) {
    const retry = Number(response.headers.get("Retry-After")) || 0;
    throw new HttpError(response.status, body.trim() || response.statusText, retry);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  return new URL(response.headers.get("Location"), new URL(url, location.href)).href;
}

export async function hangUp(sessionUrl, token) {
  if (!sessionUrl) return;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    await fetch(sessionUrl, { method: "DELETE", headers, keepalive: true, signal: AbortSignal.timeout(2000) });
  } catch {
    // the server frees the session on its own when the connection drops
  }
}

// Ends a session: DELETE first, then close the connection (closed first, the server would
// already have dropped the session and answer the DELETE with 404).
export function leave(pc, sessionUrl, token) {
  if (pc) pc.onconnectionstatechange = null;
  if (!sessionUrl) {
    pc?.close();
    return;
  }
  hangUp(sessionUrl, token).finally(() => pc?.close());
}
