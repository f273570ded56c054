// /app loses nothing: while its WebSocket is cut and cannot reconnect, bob writes into the
// open room; once the socket is back the timeline shows every message once, in order (the
// client subscribes again with `after: lastSeq`). A reload reopens the room and resumes too.

import assert from 'node:assert/strict';
import { app, assertClean, eventually, openBrowser, readState, run, send, setup } from './lib.mjs';

const { alice, bob } = setup.users;
const { general } = setup.rooms;
const inOrder = (seqs) => seqs.every((seq, i) => i === 0 || seq === seqs[i - 1] + 1);

run('app-resume', async () => {
  const browser = await openBrowser();
  const context = await browser.newContext();
  // Every WebSocket of the page goes through here, so the test can cut it like a network.
  let refuse = false;
  const sockets = [];
  await context.routeWebSocket(/\/graphql$/, (socket) => {
    if (refuse) return socket.close({ code: 1012, reason: 'cut by the test' });
    socket.connectToServer();
    sockets.push(socket);
  });
  const tab = await context.newPage();
  await send(bob, general, 'before alice arrives');
  await tab.goto(`${setup.url}/app#token=${alice.token}`);
  await tab.locator(`#rooms li[data-room-id="${general}"]`).click();
  await app.live(tab);
  const before = (await eventually('the history', () => app.seqs(tab), (seqs) => seqs.length > 0)).length;

  refuse = true;
  for (const socket of sockets.splice(0)) await socket.close({ code: 1012, reason: 'cut by the test' });
  await tab.locator('#connection:not(.live)').waitFor();
  for (const body of ['while you were away 1', 'while you were away 2', 'while you were away 3']) await send(bob, general, body);
  refuse = false;
  await eventually('the gap filled after the reconnect', () => app.seqs(tab), (seqs) => seqs.length === before + 3);
  assert.ok(inOrder(await app.seqs(tab)), `each message once, in order: ${await app.seqs(tab)}`);
  await eventually('the caught-up messages are read', () => readState(alice, general), (s) => s.unreadCount === 0);

  // A reload while bob goes on writing.
  const reload = tab.reload();
  await send(bob, general, 'during the reload');
  await reload;
  await app.live(tab);
  await send(bob, general, 'after the reload');
  await eventually('the reopened room, complete', () => app.seqs(tab), (seqs) => seqs.length === before + 5);
  assert.ok(inOrder(await app.seqs(tab)), `each message once, in order: ${await app.seqs(tab)}`);
  assert.equal(await app.badge(tab, general), '0');

  // Chromium logs the refused reconnect attempts; nothing else may go wrong.
  assertClean(browser, [/WebSocket connection to .* failed/]);
  await browser.browser.close();
});
