// What the page's modules share: the one state object and a DOM shortcut.

export const $ = (selector) => document.querySelector(selector);

/** The fields of a message every view shows. */
export const MESSAGE = 'id seq body clientId createdAt roomId author { id handle displayName }';

/** Everything the page shows, in one place. */
export const state = {
  api: null,
  me: null,
  /** room id → { id, title, muted, unread, seq } where `seq` is the seq `unread` was computed at. */
  rooms: new Map(),
  open: null, // { id, lastSeq, startCursor, hasPrevious, loadingOlder, stop }
};
