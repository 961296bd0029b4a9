// Lists the live feeds from /api/streams, refreshed every 2 s.
const body = document.getElementById("streams");

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function duration(seconds) {
  if (seconds == null) return "";
  const m = Math.floor(seconds / 60);
  return m ? `${m} min ${Math.floor(seconds % 60)} s` : `${Math.floor(seconds)} s`;
}

async function refresh() {
  try {
    const response = await fetch("/api/streams");
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const { streams } = await response.json();
    body.replaceChildren();
    if (!streams.length) {
      const tr = document.createElement("tr");
      const td = cell("Nothing is live yet. Publish a camera, or start the demo with 'orcast demo'.");
      td.colSpan = 6;
      td.className = "empty";
      tr.append(td);
      body.append(tr);
    }
    for (const s of streams) {
      const tr = document.createElement("tr");
      const video = s.video_codec ? `${s.video_codec}${s.width ? ` ${s.width}×${s.height}` : ""}` : "audio only";
      const link = document.createElement("a");
      link.href = `/watch?path=${encodeURIComponent(s.path)}`;
      link.textContent = "Watch";
      const action = document.createElement("td");
      action.append(link);
      tr.append(cell(s.path), cell(video), cell(String(s.viewers)),
        cell(`${(s.bitrate_in_bps / 1e6).toFixed(2)} Mbit/s`), cell(duration(s.uptime_s)), action);
      body.append(tr);
    }
  } catch (error) {
    body.replaceChildren();
    const tr = document.createElement("tr");
    const td = cell(`Cannot reach the server (${error.message}); retrying …`);
    td.colSpan = 6;
    tr.append(td);
    body.append(tr);
  }
}

refresh();
setInterval(refresh, 2000);
