// /app's unread badges, toasts and auto-mark-read, in two tabs of one signed-in user:
// alice reads #random while bob writes in #general; her badge for #general goes 0 → 2 in
// both tabs and a toast shows; opening #general clears the badge in both tabs and marks it
// read (checked through the API); what she sends from the composer reaches bob.

import assert from 'node:assert/strict';
import { app, assertClean, eventually, gql, openBrowser, readState, run, screenshot, send, setup } from './lib.mjs';

const { alice, bob } = setup.users;
const { general, random } = setup.rooms;
const is = (expected) => (value) => value === expected;

run('app-unread', async () => {
  const browser = await openBrowser();
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(`${setup.url}/app#token=${alice.token}`);
  await tab.locator(`#rooms li[data-room-id="${random}"]`).click();
  await eventually('#random\'s history', () => app.timeline(tab), (text) => text.includes('welcome to random'));
  const otherTab = await context.newPage();
  await otherTab.goto(`${setup.url}/app`); // signed in already: the token is kept per browser
  await app.live(tab);
  await app.live(otherTab);
  assert.equal(await app.badge(tab, general), '0');

  const long = `Bob here: ${'the quarterly numbers are in and they look good, '.repeat(3)}see you at ten`;
  await send(bob, general, 'Morning, Alice!');
  await send(bob, general, long);
  // The toast first: it goes away after a few seconds.
  const toast = tab.locator('.toast', { hasText: long.slice(0, 80) });
  await toast.waitFor();
  const toastText = await toast.innerText();
  await eventually('the badge in the first tab', () => app.badge(tab, general), is('2'));
  await eventually('the badge in the second tab', () => app.badge(otherTab, general), is('2'));
  assert.match(toastText, /Bob in # general/);
  assert.ok(toastText.endsWith('…') && !toastText.includes('see you at ten'), `80-character preview: ${toastText}`);
  await screenshot(tab, 'app');

  await tab.locator(`#rooms li[data-room-id="${general}"]`).click();
  await eventually('the opened room\'s badge', () => app.badge(tab, general), is('0'));
  await eventually('the history', () => app.timeline(tab), (text) => text.includes('Morning, Alice!') && text.includes('see you at ten'));
  await eventually('#general read, through the API', () => readState(alice, general), (s) => s.unreadCount === 0);
  await eventually('the badge in the second tab', () => app.badge(otherTab, general), is('0'));

  // A message into the open room is read at once.
  const seq = await send(bob, general, 'are you there?');
  await eventually('the live message', () => app.timeline(tab), (text) => text.includes('are you there?'));
  await eventually('read while open', () => readState(alice, general), (s) => s.lastReadSeq >= seq && s.unreadCount === 0);
  assert.equal(await app.badge(tab, general), '0');

  await tab.locator('#composer textarea').fill('Yes, on my way');
  await tab.locator('#composer textarea').press('Enter');
  const last = 'query($id: ID!) { messages(roomId: $id, last: 1) { edges { node { body author { handle } } } } }';
  await eventually('bob reads the reply', async () => (await gql(bob, last, { id: general })).messages.edges[0].node,
    (node) => node.body === 'Yes, on my way' && node.author.handle === alice.handle);
  await eventually('the reply confirmed in the timeline', () => tab.locator('#timeline li.pending').count(), is(0));
  const seqs = await app.seqs(tab);
  assert.ok(seqs.length >= 4 && seqs.every((seq, i) => i === 0 || seq === seqs[i - 1] + 1), `each message once, in order: ${seqs}`);

  assertClean(browser);
  await browser.browser.close();
});
