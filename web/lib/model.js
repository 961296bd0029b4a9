// @ts-check
// What the pages share with the server, in one place: the names and rules the server checks.
// (The Q&A's own limits arrive in its welcome message; these are the defaults until then.)

// a slug: an event, a theatre, a feed — lower-case letters, digits and '-', 1-63 characters
export const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const isSlug = (text) => SLUG.test(text);
// "theatre/feed", as in ?feed=or1/endoscope
export const isFeed = (text) => typeof text === "string" && text.split("/").length === 2 && text.split("/").every(isSlug);

// faculty voices into a theatre are feeds named talkback…
export const TALKBACK_PREFIX = "talkback";
export const isTalkback = (feed) => (feed.split("/")[1] || "").startsWith(TALKBACK_PREFIX);

// the hall's layouts and how many tiles each shows
export const LAYOUT_TILES = { single: 1, side: 2, grid: 4 };

// a feed's recording state (RecordingStatus.state); these mean "recording or about to"
export const RECORDING_ON = ["recording", "starting", "waiting"];
export const isRecording = (state) => RECORDING_ON.includes(state);

// Q&A limits until the server's welcome says otherwise
export const QA_DEFAULTS = { text_chars: 500, reason_chars: 200 };
