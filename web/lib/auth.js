// @ts-check
// The link's token: read once from the URL fragment (#token=…), kept for this tab only,
// and removed from the address bar at once so it is not bookmarked, shared or shown.
// Fragments never reach the server or a Referer header.

import { el } from "./dom.js";
import { isSlug } from "./model.js";

const KEY = "orcast.token";

export function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromLink = hash.get("token");
  if (fromLink) {
    sessionStorage.setItem(KEY, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch() with the token; JSON in and out; API errors become ApiError with the server's words.
/** @param {string} token @param {string} url @param {{method?: string, body?: any}} [options] */
export async function api(token, url, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
  return data;
}

// Replaces the page's main content with a message for someone without a usable link.
export function showNoAccess(message) {
  document.querySelector("main").replaceChildren(el("section", { className: "notice", role: "alert" },
    el("h2", { text: "This page needs your ORcast link" }), el("p", { text: message })));
}

export function noAccessMessage(error) {
  if (error instanceof ApiError && error.status === 401) {
    return `${error.message} Open the link from your invitation again, or ask the organizer for a new one.`;
  }
  if (error instanceof ApiError && error.status === 403) {
    return `${error.message}`;
  }
  if (error instanceof ApiError && error.status === 404) {
    return `${error.message} Check that the link is complete.`;
  }
  return `The server cannot be reached (${error.message}). This page will not retry; reload it when the network is back.`;
}

// What a page says when the server closes it for good (the event's WebSocket `closing`):
// a kicked person may open the page again; a revoked or expired link never works again.
export function closedMessage(reason, kind) {
  if (kind === "kicked") {
    return `You were removed from this page (${reason}). If this was a mistake, open your link again or ask the organizer.`;
  }
  if (kind === "expired") return "This link has expired. Ask the organizer for a new one.";
  if (kind === "revoked") return `This link no longer works: it was revoked (${reason}). Ask the organizer for a new one.`;
  return `This link no longer works here: ${reason}. Ask the organizer for a new one.`;
}

// The event slug in /watch/{event}, /console/{event}/{theatre} …
export function pathPart(index) {
  const part = decodeURIComponent(location.pathname.split("/")[index] || "");
  return isSlug(part) ? part : null;
}

// The event behind a page's address and link, or null once the page says why it cannot open.
// `example` is the page's address pattern; `missing` what to do without a link.
export async function openEvent(event, token, { example, missing }) {
  if (!event) {
    showNoAccess(`The address is incomplete: it should look like ${example}.`);
    return null;
  }
  if (!token) {
    showNoAccess(missing);
    return null;
  }
  try {
    return await api(token, `/api/events/${event}`);
  } catch (error) {
    showNoAccess(noAccessMessage(error));
    return null;
  }
}
