// Parley's reference web client: a room list with unread badges, a room's history and live
// messages, a composer, and toasts for the other rooms. Small on purpose: it is also the
// documentation of how a frontend uses the API.
//
// The rules it follows, which every client should:
// - Badges: `unreadCounts` once at load, then `unreadCountChanged`, dropping changes whose
//   `seq` is older than the one shown. The open room always shows 0 and is marked read.
// - Timeline: `messages(last:)` for history, then `messageAdded(roomId, after: lastSeq)`, so
//   nothing falls between the two; after a reconnect, subscribe again from the last seq seen.
// - Sends carry a `clientId`: a retry after a network failure returns the stored message
//   instead of sending it twice.

import { ApiError, NetworkError, Parley } from './api.js';

const $ = (selector) => document.querySelector(selector);
const PAGE = 30;
const MESSAGE = 'id seq body clientId createdAt roomId author { id handle displayName }';

const ROOMS = `query Rooms {
  viewer { id handle displayName rooms(first: 100) { edges { node {
    id kind name members(first: 8) { edges { node { user { id displayName } } } } } } } }
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
  /** room id → { id, title, unread, seq } where `seq` is the seq `unread` was computed at. */
  rooms: new Map(),
  open: null, // { id, lastSeq, startCursor, hasPrevious, loadingOlder, stop }
};

// ---- Signing in -------------------------------------------------------------------------

/** `#token=…` signs in (the server prints such links for demo users); `#room=…` is the open room. */
const link = new URLSearchParams(window.location.hash.slice(1));

function storedToken() {
  if (link.has('token')) {
    localStorage.setItem('parley.token', link.get('token'));
    history.replaceState(null, '', window.location.pathname); // not left in the address bar
  }
  return localStorage.getItem('parley.token');
}

function showSignIn(message = '') {
  $('#main').hidden = true;
  $('#sign-in').hidden = false;
  $('#sign-in .error').textContent = message;
}

$('#sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  localStorage.setItem('parley.token', event.target.token.value.trim());
  start();
});

$('#sign-out').addEventListener('click', () => {
  localStorage.removeItem('parley.token');
  window.location.reload();
});

async function start() {
  const token = storedToken();
  if (!token) return showSignIn();
  state.api = new Parley(token, { onConnection });
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
  if (status !== 'live' || !again) return;
  // Events are not kept for a client that was away: catch up on counts and the open room.
  refreshCounts().catch((error) => console.warn('unreadCounts', error));
  if (state.open) followRoom(state.open);
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
  const room = { id: node.id, title: roomTitle(node), unread: 0, seq: -1 };
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
  const ids = [...state.rooms.keys()];
  const { unreadCounts } = await state.api.request(COUNTS, { ids });
  const counted = new Map(unreadCounts.map((c) => [c.roomId, c]));
  for (const id of ids) {
    const count = counted.get(id);
    // Rooms with nothing unread are left out of the answer.
    setUnread(id, count?.unreadCount ?? 0, count?.seq ?? 0);
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
  upsertRoom(message.room);
  if (message.roomId === state.open?.id || message.author.id === state.me.id) return;
  const toast = document.createElement('div');
  toast.className = 'toast';
  const from = document.createElement('strong');
  from.textContent = `${message.author.displayName} in ${roomTitle(message.room)}`;
  const preview = message.body.length > 80 ? `${message.body.slice(0, 80)}…` : message.body;
  toast.append(from, preview);
  toast.addEventListener('click', () => openRoom(message.roomId));
  $('#toasts').append(toast);
  setTimeout(() => toast.remove(), 6000);
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
  const { messages } = await state.api.request(HISTORY, { roomId });
  if (state.open !== open) return; // another room was opened meanwhile
  showPage(open, messages);
  for (const { node } of messages.edges) appendMessage(node);
  scrollToEnd();
  followRoom(open);
  setUnread(roomId, 0, state.rooms.get(roomId)?.seq ?? 0);
  markRead(roomId, open.lastSeq || null);
}

/** Live messages of the open room, from the last seq shown on: no gap after history or a reconnect. */
function followRoom(open) {
  open.stop?.();
  open.stop = state.api.subscribe(ROOM_MESSAGES, { roomId: open.id, after: open.lastSeq }, ({ messageAdded }) => {
    if (state.open !== open) return;
    const atEnd = isAtEnd();
    appendMessage(messageAdded);
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

/** Shows a message once, in seq order: replays, retries and our own sends may repeat one. */
function appendMessage(message) {
  const timeline = $('#timeline');
  if (message.clientId) timeline.querySelector(`li.pending[data-client-id="${CSS.escape(message.clientId)}"]`)?.remove();
  if (timeline.querySelector(`li[data-seq="${message.seq}"]`)) return;
  const later = message.seq > state.open.lastSeq
    ? null
    : [...timeline.querySelectorAll('li[data-seq]')].find((item) => Number(item.dataset.seq) > message.seq);
  state.open.lastSeq = Math.max(state.open.lastSeq, message.seq);
  // Before our own messages still on their way, which have no seq yet.
  timeline.insertBefore(messageItem(message), later ?? timeline.querySelector('li:not([data-seq])'));
}

$('#timeline').addEventListener('scroll', async () => {
  const open = state.open;
  if (!open || open.loadingOlder || !open.hasPrevious || $('#timeline').scrollTop > 40) return;
  open.loadingOlder = true;
  try {
    const { messages } = await state.api.request(HISTORY, { roomId: open.id, before: open.startCursor });
    if (state.open !== open) return;
    showPage(open, messages);
    const timeline = $('#timeline');
    const fromBottom = timeline.scrollHeight - timeline.scrollTop;
    timeline.prepend(...messages.edges.map(({ node }) => messageItem(node)));
    timeline.scrollTop = timeline.scrollHeight - fromBottom; // the reader stays where they were
  } finally {
    open.loadingOlder = false;
  }
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
      if (state.open?.id === roomId) appendMessage(sendMessage);
      return;
    } catch (error) {
      if (error instanceof NetworkError && attempt < 6) {
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
        continue;
      }
      // Nothing is dropped silently: the text stays, and a click tries again.
      item.className = 'failed';
      item.title = `Not sent (${error.code ?? error.message}): click to retry`;
      item.addEventListener('click', () => { item.remove(); send(roomId, body, clientId); }, { once: true });
      return;
    }
  }
}

start();
