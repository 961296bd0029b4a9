// @ts-check
// What a hall display shows, decided in one place for the hall itself and for the moderator
// desk's preview of it: which feeds fill the layout, and which question goes on air there.

import { LAYOUT_TILES, isTalkback } from "./model.js";

// The moderator's feeds, or, before any are chosen, what is live (never talk-back), as many as
// the layout holds.
export function hallFeeds(layout, liveFeeds) {
  const capacity = LAYOUT_TILES[layout.mode] || 1;
  const feeds = layout.feeds.length ? layout.feeds : liveFeeds.filter((f) => !isTalkback(f));
  return feeds.slice(0, capacity);
}

// One question on a hall screen, and only one that belongs to what the screen shows: the
// question for every theatre, else the newest for a theatre on screen (a question for OR 2
// over OR 1's picture would be read as a question about OR 1). Returns [theatre, question].
// With no picture on screen there is nothing to mistake it for: the newest question shows.
export function hallQuestion(slots, feeds) {
  const shown = new Set(feeds.map((f) => f.split("/")[0]));
  const entries = Object.entries(slots || {}).reverse();
  return entries.find(([t]) => t === "*") || entries.find(([t]) => !feeds.length || shown.has(t)) || null;
}
