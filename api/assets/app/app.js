// Parley's reference web client: a room list with unread badges, a room's history and live
// messages, a composer, and toasts for the other rooms. Small on purpose: it is also the
// documentation of how a frontend uses the API. This module signs in and keeps the room
// list, its badges and the toasts; `room.js` is the open room; `api.js` talks to the server.
//
// The rules it follows, which every client should:
// - Badges: `unreadCounts` at load and after every (re)connection, then `unreadCountChanged`,
//   dropping changes whose `seq` is older than the one shown. The open room always shows 0
//   and is marked read.
// - Timeline: `messages(last:)` for history, then `messageAdded(roomId, after: lastSeq)`, so
//   nothing falls between the two; after a reconnect, subscribe again from the last seq
//   received (from history or the subscription, never from a send's answer, which may be
//   ahead of messages still on their way).
// - Sends carry a `clientId`: a retry after a network failure returns the stored message
//   instead of sending it twice.

import { ApiError, Parley } from './api.js';
import { followRoom, openRoom } from './room.js';
import { $, MESSAGE, state } from './state.js';


const ROOMS = `query Rooms {
  viewer { id handle displayName rooms(first: 100) { edges { node {
    id kind name isMuted members(first: 8) { edges { node { user { id displayName } } } } } } } }
}`;
const COUNTS = 'query Counts($ids: [ID!]!) { unreadCounts(roomIds: $ids) { roomId unreadCount seq } }';
const MARK_READ = 'mutation Read($roomId: ID!, $seq: Int) { markRoomRead(roomId: $roomId, seq: $seq) { unreadCount } }';
const ALL_MESSAGES = `subscription All { messageAdded { ${MESSAGE} room { id name kind } } }`;
const COUNT_CHANGES = `subscription Counts { unreadCountChanged { roomId unreadCount seq room { id name kind } } }`;


// ---- Signing in -------------------------------------------------------------------------

/** `#token=…` signs in (the server prints such links for demo users); `#room=…` is the open room. */
const link = new URLSearchParams(window.location.hash.slice(1));

function storedToken() {
  if (link.has('token')) {
    localStorage.setItem('parley.token', link.get('token'));
    link.delete('token'); // used once: a token pasted later must not be overwritten by it
    history.replaceState(null, '', window.location.pathname); // not left in the address bar
  }
  return localStorage.getItem('parley.token');
}

/** The sign-in form, with a button per demo user when the server just seeded the demo. */
async function showSignIn(message = '') {
  $('#main').hidden = true;
  $('#sign-in').hidden = false;
  $('#sign-in .error').textContent = message;
  const response = await fetch('/app/demo-users').catch(() => null);
  if (!response?.ok) return;
  const buttons = (await response.json()).map((user) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = `${user.displayName} (@${user.handle})`;
    button.addEventListener('click', () => signIn(user.token));
    return button;
  });
  $('#demo-users').replaceChildren(...buttons);
  $('#demo').hidden = buttons.length === 0;
}

function signIn(token) {
  localStorage.setItem('parley.token', token);
  start();
}

$('#sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  signIn(event.target.token.value.trim());
});

$('#sign-out').addEventListener('click', () => {
  localStorage.removeItem('parley.token');
  window.location.reload();
});

async function start() {
  const token = storedToken();
  if (!token) return showSignIn();
  state.api = new Parley(token, { onConnection, onRefused });
  let viewer;
  try {
    ({ viewer } = await state.api.request(ROOMS));
  } catch (error) {
    state.api.close();
    const refused = error instanceof ApiError && error.code === 'UNAUTHENTICATED';
    if (refused) localStorage.removeItem('parley.token');
    return showSignIn(refused ? 'That token was refused: paste another.' : error.message);
  }
  state.me = viewer;
  $('#me').textContent = viewer.displayName;
  $('#sign-in').hidden = true;
  $('#main').hidden = false;
  for (const { node } of viewer.rooms.edges) upsertRoom(node);
  // Subscribe before reading the counts: a change in between then arrives as an event, and
  // the `seq` rule keeps whichever of the two is newer.
  state.api.subscribe(COUNT_CHANGES, {}, ({ unreadCountChanged }) => onCountChange(unreadCountChanged));
  state.api.subscribe(ALL_MESSAGES, {}, ({ messageAdded }) => onAnyMessage(messageAdded));
  await refreshCounts();
  // A reload reopens the room that was open, and follows it from the history it loads.
  if (state.rooms.has(link.get('room'))) openRoom(link.get('room'));
}

function onConnection(status, again) {
  $('#connection').textContent = status === 'live' ? 'live' : 'reconnecting…';
  $('#connection').classList.toggle('live', status === 'live');
  if (status !== 'live') return;
  // Events are not kept for a client that was away, and the server may register this
  // connection's subscriptions a moment after it answered: read the counts now and once more
  // shortly after (the seq rule makes repeats harmless).
  refreshCounts();
  setTimeout(refreshCounts, 1000);
  if (again && state.open) followRoom(state.open);
}

function onRefused() {
  state.api.close();
  localStorage.removeItem('parley.token');
  showSignIn('Signed out: the server no longer accepts this token (expired, or the account was deactivated).');
}

// ---- The room list and its badges -------------------------------------------------------

function roomTitle(room) {
  if (room.name) return room.kind === 'CHANNEL' ? `# ${room.name}` : room.name;
  const others = (room.members?.edges ?? []).map(({ node }) => node.user).filter((u) => u.id !== state.me.id);
  return others.map((u) => u.displayName).join(', ') || 'Direct messages';
}

function upsertRoom(node) {
  const known = state.rooms.get(node.id);
  if (known) return known;
  const room = { id: node.id, title: roomTitle(node), muted: Boolean(node.isMuted), unread: 0, seq: -1 };
  state.rooms.set(room.id, room);
  const item = document.createElement('li');
  item.dataset.roomId = room.id;
  item.innerHTML = '<span class="name"></span><span class="badge" data-count="0">0</span>';
  item.querySelector('.name').textContent = room.title;
  item.addEventListener('click', () => openRoom(room.id));
  $('#rooms').append(item);
  return room;
}

/** Shows `unread` for a room, unless an update computed at a later seq is already shown. */
export function setUnread(roomId, unread, seq) {
  const room = state.rooms.get(roomId);
  if (!room || seq < room.seq) return;
  room.seq = seq;
  room.unread = state.open?.id === roomId ? 0 : unread;
  const item = $(`#rooms li[data-room-id="${roomId}"]`);
  const badge = item.querySelector('.badge');
  badge.textContent = String(room.unread);
  badge.dataset.count = String(room.unread);
  item.classList.toggle('unread', room.unread > 0);
}

async function refreshCounts() {
  const asked = new Map([...state.rooms.values()].map((room) => [room.id, room.seq]));
  let unreadCounts;
  try {
    ({ unreadCounts } = await state.api.request(COUNTS, { ids: [...asked.keys()] }));
  } catch (error) {
    return console.warn('unreadCounts', error);
  }
  const counted = new Map(unreadCounts.map((c) => [c.roomId, c]));
  for (const [id, seqBefore] of asked) {
    const count = counted.get(id);
    if (count) {
      setUnread(id, count.unreadCount, count.seq);
    } else if (state.rooms.get(id)?.seq === seqBefore) {
      // Left out of the answer: nothing unread when it was computed, at a seq we are not
      // told. Unless an event moved the room since we asked, that is the newest we know.
      setUnread(id, 0, seqBefore);
    }
  }
}

function onCountChange(change) {
  if (!change.room) {
    // The viewer left or was removed.
    state.rooms.delete(change.roomId);
    $(`#rooms li[data-room-id="${change.roomId}"]`)?.remove();
    return;
  }
  upsertRoom(change.room);
  setUnread(change.roomId, change.unreadCount, change.seq);
  if (state.open?.id === change.roomId && change.unreadCount > 0) markRead(change.roomId, change.seq);
}

export function markRead(roomId, seq) {
  state.api.request(MARK_READ, { roomId, seq }).catch((error) => console.warn('markRoomRead', error));
}

// ---- Toasts for the rooms not open ------------------------------------------------------

function onAnyMessage(message) {
  const room = upsertRoom(message.room);
  if (message.roomId === state.open?.id || message.author.id === state.me.id || room.muted) return;
  const preview = message.body.length > 80 ? `${message.body.slice(0, 80)}…` : message.body;
  toast(`${message.author.displayName} in ${room.title}`, preview, () => openRoom(message.roomId));
}

export function toast(title, text, onClick) {
  const toast = document.createElement('div');
  toast.className = 'toast';
  const heading = document.createElement('strong');
  heading.textContent = title;
  toast.append(heading, text);
  toast.addEventListener('click', () => {
    toast.remove();
    onClick?.();
  });
  $('#toasts').append(toast);
  setTimeout(() => toast.remove(), 8000);
}

start();
