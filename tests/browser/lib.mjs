// What the browser cases share: a headless Debian Chromium that can reach the Parley server
// under test and nothing else, a record of everything the pages got wrong (console errors,
// CSP refusals, requests that tried to leave), and a small GraphQL client acting as the other
// users. tests/api/browser.rs starts the server and passes the case its set-up as JSON.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

/** The set-up the Rust test passes as the first argument: url, users, rooms, screenshots. */
export const setup = JSON.parse(process.argv[2]);
const origin = new URL(setup.url).origin;
const WAIT = 15_000;

/**
 * A browser whose network ends at the server: Chromium resolves no other host, and every
 * request that still tries another origin is aborted and remembered in `escaped`.
 */
export async function openBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.PARLEY_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${new URL(setup.url).hostname}`,
    ],
  });
  const escaped = [];
  const problems = [];
  const newContext = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('data:') || new URL(url).origin === origin) return route.continue();
      escaped.push(url);
      return route.abort();
    });
    context.on('page', (page) => watch(page, problems));
    return context;
  };
  return { browser, newContext, escaped, problems };
}

function watch(page, problems) {
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

/**
 * Fails unless nothing left the machine and no page logged an error (CSP refusals included)
 * other than those matching `expected`.
 */
export function assertClean({ escaped, problems }, expected = []) {
  assert.deepEqual(escaped, [], 'requests to anything but the server');
  const unexpected = problems.filter((problem) => !expected.some((pattern) => pattern.test(problem)));
  assert.deepEqual(unexpected, [], 'errors in the pages');
}

/** A query or mutation as `user` (one of setup.users); returns `data`. */
export async function gql(user, query, variables = {}) {
  const response = await fetch(`${setup.url}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${user.token}` },
    body: JSON.stringify({ query, variables }),
  });
  const result = await response.json();
  assert.equal(result.errors, undefined, `GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

export async function send(user, roomId, body) {
  const data = await gql(user, 'mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }', {
    input: { roomId, body },
  });
  return data.sendMessage.seq;
}

/** `{ unreadCount, lastReadSeq }` of a room as `user` sees it through the API. */
export async function readState(user, roomId) {
  const data = await gql(user, 'query($id: ID!) { room(id: $id) { unreadCount lastReadSeq } }', { id: roomId });
  return data.room;
}

/** Client-side helpers for /app. */
export const app = {
  badge: (page, roomId) => page.locator(`#rooms li[data-room-id="${roomId}"] .badge`).innerText(),
  /** The seqs of the messages shown in the timeline, in page order. */
  seqs: (page) => page.locator('#timeline li[data-seq]').evaluateAll((items) => items.map((i) => Number(i.dataset.seq))),
  timeline: (page) => page.locator('#timeline').innerText(),
  /** Signed in, and the WebSocket is up (plus a moment for its subscriptions to reach the server). */
  async live(page) {
    await page.locator('#connection.live').waitFor();
    await page.waitForTimeout(1000);
  },
};

/** Waits until `read()` returns something `check` accepts; fails with the last value seen. */
export async function eventually(what, read, check) {
  const deadline = Date.now() + WAIT;
  let last;
  for (;;) {
    last = await read();
    if (check(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${WAIT} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function screenshot(page, name) {
  mkdirSync(setup.screenshots, { recursive: true });
  await page.screenshot({ path: `${setup.screenshots}/${name}.png` });
}

/** Runs a case: exits 0 when it passes, 1 with the reason when it does not. */
export async function run(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`${name}: passed in ${Date.now() - started} ms`);
    process.exit(0);
  } catch (error) {
    console.error(`${name}: FAILED\n${error.stack ?? error}`);
    process.exit(1);
  }
}
