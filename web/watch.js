// Plays one feed over WHEP; reconnects by itself when the server or network drops.
import { HttpError, hangUp, negotiate, setStatus, streamPathFromQuery } from "./lib/webrtchttp.js";

const video = document.getElementById("video");
const status = document.getElementById("status");
const stats = document.getElementById("stats");
let path;
try {
  path = streamPathFromQuery("demo/or1/endoscope");
} catch (error) {
  setStatus(status, error.message, "bad");
  throw error;
}
document.getElementById("path").textContent = path;
document.title = `ORcast · ${path}`;

let pc = null;
let sessionUrl = null;
let retryDelay = 1000;
let lastDecoded = 0;
let lastStatsAt = 0;
let stalledSince = 0;

document.getElementById("unmute").addEventListener("click", () => {
  video.muted = !video.muted;
  document.getElementById("unmute").textContent = video.muted ? "Unmute" : "Mute";
});

function scheduleReconnect(message, delayMs) {
  setStatus(status, message, "warn");
  teardown();
  setTimeout(connect, delayMs);
}

function teardown() {
  if (pc) {
    pc.onconnectionstatechange = null;
    pc.close();
  }
  hangUp(sessionUrl);
  pc = null;
  sessionUrl = null;
}

async function connect() {
  const peer = new RTCPeerConnection();
  pc = peer;
  peer.addTransceiver("video", { direction: "recvonly" });
  peer.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  video.srcObject = stream;
  peer.ontrack = (event) => stream.addTrack(event.track);
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") {
      setStatus(status, "Live", "ok");
      retryDelay = 1000;
    } else if (peer.connectionState === "failed" || peer.connectionState === "closed") {
      scheduleReconnect("Connection lost, reconnecting …", retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    }
  };
  try {
    setStatus(status, "Connecting …");
    sessionUrl = await negotiate(peer, `/whep/${path}`);
  } catch (error) {
    if (peer !== pc) return;
    if (error instanceof HttpError && error.status === 409) {
      scheduleReconnect(`Waiting for ${path} to go live …`, (error.retryAfter || 2) * 1000);
    } else {
      const delay = retryDelay;
      retryDelay = Math.min(retryDelay * 2, 10000);
      scheduleReconnect(`Cannot play: ${error.message}. Retrying in ${delay / 1000} s …`, delay);
    }
  }
}

async function showStats() {
  if (!pc) return;
  const report = await pc.getStats();
  for (const s of report.values()) {
    if (s.type !== "inbound-rtp" || s.kind !== "video") continue;
    const now = performance.now();
    const decoded = s.framesDecoded || 0;
    const fps = lastStatsAt ? ((decoded - lastDecoded) * 1000) / (now - lastStatsAt) : 0;
    const delay = s.jitterBufferEmittedCount ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : 0;
    stats.textContent = `${s.frameWidth || "?"}×${s.frameHeight || "?"} · ${fps.toFixed(0)} fps · ` +
      `buffer ${delay.toFixed(0)} ms · lost ${s.packetsLost || 0}`;
    if (pc.connectionState === "connected") {
      if (decoded === lastDecoded) {
        stalledSince = stalledSince || now;
        if (now - stalledSince > 2000) setStatus(status, `${path} is reconnecting …`, "warn");
      } else {
        stalledSince = 0;
        setStatus(status, "Live", "ok");
      }
    }
    lastDecoded = decoded;
    lastStatsAt = now;
  }
}

window.addEventListener("pagehide", teardown);
setInterval(showStats, 1000);
connect();

// A read-only handle for diagnostics and browser tests (getStats from the console).
window.orcast = { get peer() { return pc; } };
