// Signing in to /app: a refused link token, then a pasted one; the demo users' buttons (the
// server just seeded the demo); and being signed out when an admin deactivates the account
// while the page is open.

import assert from 'node:assert/strict';
import { assertClean, eventually, gql, openBrowser, run, setup } from './lib.mjs';

const shownName = (page) => page.locator('#me').innerText();

run('app-sign-in', async () => {
  const demo = await (await fetch(`${setup.url}/app/demo-users`)).json();
  const [alice, bob, carol, admin] = ['alice', 'bob', 'carol', 'admin'].map((h) => demo.find((u) => u.handle === h));
  const browser = await openBrowser();
  const page = await (await browser.newContext()).newPage();

  // A stale link, then the token pasted by hand: the link must not win again.
  await page.goto(`${setup.url}/app#token=not-a-token`);
  await page.locator('#sign-in .error', { hasText: 'refused' }).waitFor();
  await page.locator('#sign-in textarea').fill(bob.token);
  await page.locator('#sign-in button[type=submit]').click();
  await eventually('signed in as bob', () => shownName(page), (name) => name === 'Bob Baker');
  // The demo's direct room with alice, one message unread for bob.
  await eventually('bob\'s unread direct message', () => page.locator('#rooms li', { hasText: 'Alice Archer' }).locator('.badge').innerText(), (text) => text === '1');

  // Sign out; the demo users are offered as buttons.
  await page.locator('#sign-out').click();
  await page.locator('#demo-users button', { hasText: '@carol' }).click();
  await eventually('signed in as carol', () => shownName(page), (name) => name === 'Carol Chen');
  await page.locator('#connection.live').waitFor();

  // An admin deactivates carol: her open page is signed out at once.
  const found = await gql(admin, 'query { users(search: "carol") { edges { node { id handle } } } }');
  const carolId = found.users.edges.find((e) => e.node.handle === 'carol').node.id;
  await gql(admin, 'mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }', { id: carolId });
  await page.locator('#sign-in .error', { hasText: 'deactivated' }).waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('parley.token')), null, 'the refused token is forgotten');
  assert.ok(alice.token.length > 20);

  // The refused link token is a failed GraphQL request, which the page reports as an error.
  assertClean(browser, [/status of 401/]);
  await browser.browser.close();
});
