// Parley's reference web client: a room list with unread badges, a room's history and live
// messages, a composer, and toasts for the other rooms. Small on purpose: it is also the
// documentation of how a frontend uses the API.
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

import { ApiError, NetworkError, Parley } from './api.js';

const $ = (selector) => document.querySelector(selector);
const PAGE = 30;
const MESSAGE = 'id seq body clientId createdAt roomId author { id handle displayName }';

const ROOMS = `query Rooms {
  viewer { id handle displayName rooms(first: 100) { edges { node {
    id kind name isMuted members(first: 8) { edges { node { user { id displayName } } } } } } } }
}`;
const COUNTS = 'query Counts($ids: [ID!]!) { unreadCounts(roomIds: $ids) { roomId unreadCount seq } }';
const HISTORY = `query History($roomId: ID!, $before: String) {
  messages(roomId: $roomId, last: ${PAGE}, before: $before) {
    edges { node { ${MESSAGE} } } pageInfo { hasPreviousPage startCursor }
  }
}`;
const MARK_READ = 'mutation Read($roomId: ID!, $seq: Int) { markRoomRead(roomId: $roomId, seq: $seq) { unreadCount } }';
const SEND = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE} } }`;
const ROOM_MESSAGES = `subscription Room($roomId: ID!, $after: Int) { messageAdded(roomId: $roomId, after: $after) { ${MESSAGE} } }`;
const ALL_MESSAGES = `subscription All { messageAdded { ${MESSAGE} room { id name kind } } }`;
const COUNT_CHANGES = `subscription Counts { unreadCountChanged { roomId unreadCount seq room { id name kind } } }`;

/** Everything the page shows, in one place. */
const state = {
  api: null,
  me: null,
  /** room id → { id, title, muted, unread, seq } where `seq` is the seq `unread` was computed at. */
  rooms: new Map(),
  open: null, // { id, lastSeq, startCursor, hasPrevious, loadingOlder, stop }
};

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
function setUnread(roomId, unread, seq) {
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

function markRead(roomId, seq) {
  state.api.request(MARK_READ, { roomId, seq }).catch((error) => console.warn('markRoomRead', error));
}

// ---- Toasts for the rooms not open ------------------------------------------------------

function onAnyMessage(message) {
  const room = upsertRoom(message.room);
  if (message.roomId === state.open?.id || message.author.id === state.me.id || room.muted) return;
  const preview = message.body.length > 80 ? `${message.body.slice(0, 80)}…` : message.body;
  toast(`${message.author.displayName} in ${room.title}`, preview, () => openRoom(message.roomId));
}

function toast(title, text, onClick) {
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

// ---- The open room ----------------------------------------------------------------------

async function openRoom(roomId) {
  if (state.open?.id === roomId) return;
  state.open?.stop?.();
  const open = { id: roomId, lastSeq: 0, startCursor: null, hasPrevious: false, loadingOlder: false };
  state.open = open;
  history.replaceState(null, '', `#room=${encodeURIComponent(roomId)}`);
  for (const item of document.querySelectorAll('#rooms li')) item.classList.toggle('open', item.dataset.roomId === roomId);
  $('#room-title').textContent = state.rooms.get(roomId)?.title ?? '';
  $('#timeline').replaceChildren();
  $('#composer').hidden = false;
  let messages;
  try {
    ({ messages } = await state.api.request(HISTORY, { roomId }));
  } catch (error) {
    if (state.open !== open) return;
    state.open = null; // so a click on the room tries again
    $('#composer').hidden = true;
    $('#timeline').replaceChildren(Object.assign(document.createElement('li'), {
      className: 'failed',
      textContent: `Could not load this room (${error.code ?? error.message}): click it to retry.`,
    }));
    return;
  }
  if (state.open !== open) return; // another room was opened meanwhile
  showPage(open, messages);
  for (const { node } of messages.edges) showMessage(node, { received: true });
  scrollToEnd();
  followRoom(open);
  setUnread(roomId, 0, state.rooms.get(roomId)?.seq ?? 0);
  markRead(roomId, open.lastSeq || null);
  fillWithOlder(open);
}

/** Live messages of the open room, from the last seq received on: no gap after history or a reconnect. */
function followRoom(open) {
  open.stop?.();
  open.stop = state.api.subscribe(ROOM_MESSAGES, { roomId: open.id, after: open.lastSeq }, ({ messageAdded }) => {
    if (state.open !== open) return;
    const atEnd = isAtEnd();
    showMessage(messageAdded, { received: true });
    if (atEnd) scrollToEnd();
    if (messageAdded.author.id !== state.me.id) markRead(open.id, messageAdded.seq);
  });
}

function showPage(open, connection) {
  open.startCursor = connection.pageInfo.startCursor;
  open.hasPrevious = connection.pageInfo.hasPreviousPage;
}

function messageItem(message) {
  const item = document.createElement('li');
  item.dataset.seq = String(message.seq);
  if (message.clientId) item.dataset.clientId = message.clientId;
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = message.author.displayName;
  const time = document.createElement('time');
  time.dateTime = message.createdAt;
  time.textContent = new Date(message.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  item.append(author, time, message.body);
  return item;
}

/**
 * Shows a message of the open room once, in seq order: replays, retries and our own sends
 * may repeat one. `received`: it came from history or the subscription, so the subscription
 * may resume after it.
 */
function showMessage(message, { received }) {
  const open = state.open;
  const timeline = $('#timeline');
  // Our own message on its way (or marked failed although it got through) is replaced.
  if (message.clientId) timeline.querySelector(`li:not([data-seq])[data-client-id="${CSS.escape(message.clientId)}"]`)?.remove();
  if (received) open.lastSeq = Math.max(open.lastSeq, message.seq);
  if (timeline.querySelector(`li[data-seq="${message.seq}"]`)) return;
  const shown = timeline.querySelectorAll('li[data-seq]');
  const last = shown[shown.length - 1];
  const later = last && Number(last.dataset.seq) > message.seq
    ? [...shown].find((item) => Number(item.dataset.seq) > message.seq)
    : null;
  // Before our own messages still on their way, which have no seq yet.
  timeline.insertBefore(messageItem(message), later ?? timeline.querySelector('li:not([data-seq])'));
}

/** Loads the page before the oldest message shown; the reader stays where they were. */
async function loadOlder(open) {
  if (open.loadingOlder || !open.hasPrevious) return;
  open.loadingOlder = true;
  try {
    const { messages } = await state.api.request(HISTORY, { roomId: open.id, before: open.startCursor });
    if (state.open !== open) return;
    showPage(open, messages);
    const timeline = $('#timeline');
    const fromBottom = timeline.scrollHeight - timeline.scrollTop;
    timeline.prepend(...messages.edges.map(({ node }) => messageItem(node)));
    timeline.scrollTop = timeline.scrollHeight - fromBottom;
  } catch (error) {
    console.warn('older messages', error);
  } finally {
    open.loadingOlder = false;
  }
}

/** A short first page does not fill the timeline, so no scroll could ask for more. */
async function fillWithOlder(open) {
  const timeline = $('#timeline');
  while (state.open === open && open.hasPrevious && timeline.scrollHeight <= timeline.clientHeight) {
    await loadOlder(open);
  }
}

$('#timeline').addEventListener('scroll', () => {
  if (state.open && $('#timeline').scrollTop < 40) loadOlder(state.open);
});

function isAtEnd() {
  const timeline = $('#timeline');
  return timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 60;
}

function scrollToEnd() {
  $('#timeline').scrollTop = $('#timeline').scrollHeight;
}

// ---- Sending ----------------------------------------------------------------------------

$('#composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const field = event.target.body;
  const body = field.value.trim();
  if (!body || !state.open) return;
  field.value = '';
  send(state.open.id, body, crypto.randomUUID());
});

$('#composer textarea').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('#composer').requestSubmit();
  }
});

/** Sends with retries on network failures; the same `clientId` makes a retry harmless. */
async function send(roomId, body, clientId) {
  const item = document.createElement('li');
  item.className = 'pending';
  item.dataset.clientId = clientId;
  item.textContent = body;
  $('#timeline').append(item);
  scrollToEnd();
  for (let attempt = 0; ; attempt++) {
    try {
      const { sendMessage } = await state.api.request(SEND, { input: { roomId, body, clientId } });
      if (state.open?.id === roomId) showMessage(sendMessage, { received: false });
      return;
    } catch (error) {
      if (error instanceof NetworkError && attempt < 6) {
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
        continue;
      }
      // Nothing is dropped silently: the text stays, and a click tries again.
      const reason = error.code ?? error.message;
      if (!item.isConnected) {
        const room = state.rooms.get(roomId)?.title ?? 'a room';
        return toast(`Not sent to ${room} (${reason})`, body.slice(0, 80), () => openRoom(roomId));
      }
      item.className = 'failed';
      item.title = `Not sent (${reason}): click to retry`;
      item.addEventListener('click', () => { item.remove(); send(roomId, body, clientId); }, { once: true });
      return;
    }
  }
}

start();
