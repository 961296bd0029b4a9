// Technician console: publishes the browser's camera and microphone as one feed over WHIP.
import { api, noAccessMessage, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { HttpError, hangUp, negotiate, setStatus } from "./lib/webrtchttp.js";

const theatreSelect = document.getElementById("theatre");
const feedInput = document.getElementById("feed");
const cameraSelect = document.getElementById("camera");
const quality = document.getElementById("quality");
const withAudio = document.getElementById("audio");
const preview = document.getElementById("preview");
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
const status = document.getElementById("status");
const stats = document.getElementById("stats");

const event = pathPart(2);
const fixedTheatre = pathPart(3);
const token = takeToken();
let pc = null;
let sessionUrl = null;
let media = null;
let wantLive = false;
let lastBytes = 0;
let lastAt = 0;

async function listCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    cameraSelect.replaceChildren();
    for (const d of devices.filter((x) => x.kind === "videoinput")) {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `Camera ${cameraSelect.length + 1}`;
      cameraSelect.append(option);
    }
  } catch (error) {
    setStatus(status, `Cannot list cameras: ${error.message}`, "bad");
  }
}

async function openMedia() {
  const [width, height, kbps] = quality.value.split("x").map(Number);
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
  if (cameraSelect.value) video.deviceId = { exact: cameraSelect.value };
  media = await navigator.mediaDevices.getUserMedia({ video, audio: withAudio.checked });
  preview.srcObject = media;
  return kbps;
}

async function goLive() {
  const feed = feedInput.value.trim();
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(feed)) {
    setStatus(status, "A feed name is lower-case letters, digits and '-', like endoscope or room", "bad");
    return;
  }
  const path = `${event}/${theatreSelect.value}/${feed}`;
  wantLive = true;
  startButton.disabled = true;
  stopButton.disabled = false;
  try {
    setStatus(status, "Opening the camera …");
    const kbps = media ? Number(quality.value.split("x")[2]) : await openMedia();
    await listCameras();
    const peer = new RTCPeerConnection();
    pc = peer;
    for (const track of media.getTracks()) {
      const sender = peer.addTransceiver(track, { direction: "sendonly" }).sender;
      if (track.kind === "video") {
        const params = sender.getParameters();
        params.encodings = [{ maxBitrate: kbps * 1000 }];
        sender.setParameters(params).catch(() => {});
      }
    }
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      if (peer.connectionState === "connected") setStatus(status, `Live on ${path}`, "ok");
      if (peer.connectionState === "failed" && wantLive) {
        setStatus(status, "Connection lost, reconnecting …", "warn");
        restart(2000);
      }
    };
    setStatus(status, "Connecting …");
    sessionUrl = await negotiate(peer, `/whip/${path}`, token);
  } catch (error) {
    setStatus(status, `Could not go live: ${error.message}`, "bad");
    if (error instanceof HttpError && error.status === 401) {
      wantLive = false;
      teardown();
      showNoAccess(`${error.message}`);
      return;
    }
    if (wantLive && error.status && error.status >= 500) restart(3000);
    else stop();
  }
}

function teardown() {
  if (pc) {
    pc.onconnectionstatechange = null;
    pc.close();
  }
  hangUp(sessionUrl, token);
  pc = null;
  sessionUrl = null;
}

function restart(delayMs) {
  teardown();
  setTimeout(() => {
    if (wantLive) goLive();
  }, delayMs);
}

function stop() {
  wantLive = false;
  teardown();
  startButton.disabled = false;
  stopButton.disabled = true;
  if (!status.dataset.kind || status.dataset.kind === "ok") setStatus(status, "Not live");
}

async function showStats() {
  if (!pc) {
    stats.textContent = "";
    return;
  }
  for (const s of (await pc.getStats()).values()) {
    if (s.type !== "outbound-rtp" || s.kind !== "video") continue;
    const now = performance.now();
    const kbps = lastAt ? ((s.bytesSent - lastBytes) * 8) / (now - lastAt) : 0;
    stats.textContent = `${s.frameWidth || "?"}×${s.frameHeight || "?"} · ${(s.framesPerSecond || 0).toFixed(0)} fps · ${kbps.toFixed(0)} kbit/s`;
    lastBytes = s.bytesSent;
    lastAt = now;
  }
}

async function start() {
  if (!event) return showNoAccess("The address is incomplete: it should look like /console/your-event/or1.");
  if (!token) return showNoAccess("Open the technician link you were given: it carries your access to this theatre.");
  let info;
  try {
    info = await api(token, `/api/events/${event}`);
  } catch (error) {
    return showNoAccess(noAccessMessage(error));
  }
  if (!info.you.capabilities.includes("publish") && !info.you.capabilities.includes("talkback")) {
    return showNoAccess(`A ${info.you.role} link cannot send feeds; the technician console needs a technician link.`);
  }
  document.getElementById("title").textContent = `${info.event.title} · console`;
  document.getElementById("who").textContent = `${info.you.name} · ${info.you.role}`;
  const theatres = info.you.theatre ? info.event.theatres.filter((t) => t.slug === info.you.theatre)
    : info.event.theatres;
  const slugs = theatres.map((t) => t.slug);
  if (fixedTheatre && !slugs.includes(fixedTheatre)) theatres.push({ slug: fixedTheatre, title: fixedTheatre });
  for (const t of theatres) {
    const option = document.createElement("option");
    option.value = t.slug;
    option.textContent = t.title;
    theatreSelect.append(option);
  }
  if (fixedTheatre) {
    theatreSelect.value = fixedTheatre;
    theatreSelect.disabled = true;
  }
  if (info.you.role === "faculty") feedInput.value = "talkback";
  startButton.addEventListener("click", goLive);
  stopButton.addEventListener("click", stop);
  window.addEventListener("pagehide", teardown);
  setInterval(showStats, 1000);
  listCameras();
}

start();

// A read-only handle for diagnostics and browser tests (getStats from the console).
window.orcast = { get peer() { return pc; } };
