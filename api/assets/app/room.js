// The open room of the reference client: its history (paged upward), its live messages from
// the last seq received on, read marks, and the composer with its retries.

import { NetworkError } from './api.js';
import { markRead, setUnread, toast } from './app.js';
import { $, MESSAGE, state } from './state.js';

const PAGE = 30;
const HISTORY = `query History($roomId: ID!, $before: String) {
  messages(roomId: $roomId, last: ${PAGE}, before: $before) {
    edges { node { ${MESSAGE} } } pageInfo { hasPreviousPage startCursor }
  }
}`;
const SEND = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE} } }`;
const ROOM_MESSAGES = `subscription Room($roomId: ID!, $after: Int) { messageAdded(roomId: $roomId, after: $after) { ${MESSAGE} } }`;

// ---- The open room ----------------------------------------------------------------------

export async function openRoom(roomId) {
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
export function followRoom(open) {
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
