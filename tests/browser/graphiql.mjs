// GraphiQL, offline: the page loads with the network ending at the server, runs the default
// tab's query as alice (token from the `#token=` link), and its subscription receives a
// message bob sends.

import { assertClean, eventually, openBrowser, run, screenshot, send, setup } from './lib.mjs';

const { alice, bob } = setup.users;

/**
 * Runs one operation of the tab: ▶ opens a menu of them once GraphiQL has parsed the tab,
 * which on a loaded machine can come after the button shows, so click until the menu opens.
 */
async function runOperation(page, name) {
  const item = page.getByRole('menuitem', { name });
  await eventually(`the menu item ${name}`, async () => {
    await page.locator('.graphiql-execute-button').click();
    const shown = await item.waitFor({ timeout: 2000 }).then(() => true, () => false);
    if (!shown) await page.keyboard.press('Escape');
    return shown;
  }, (shown) => shown);
  await item.click();
}

const resultText = (page) => page.locator('.result-window').innerText();

run('graphiql', async () => {
  const browser = await openBrowser();
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${setup.url}/#token=${alice.token}`);
  await page.locator('.graphiql-container').waitFor();
  await eventually('the token leaves the address bar', async () => page.url(), (url) => !url.includes('token'));

  await runOperation(page, 'MyRooms');
  await eventually('the query result', () => resultText(page), (text) => text.includes(`"handle": "${alice.handle}"`));

  await runOperation(page, 'Live');
  // The stop button shows the subscription started in the page; the server may not have it
  // yet, so bob sends again (a new message) until one is shown.
  await page.locator('.graphiql-execute-button[aria-label^="Stop query"]').waitFor();
  let body;
  await eventually('the subscription delivers bob\'s message', async () => {
    body = `hello from bob ${Date.now()}`;
    await send(bob, setup.rooms.general, body);
    await page.waitForTimeout(1000);
    return resultText(page);
  }, (text) => text.includes(body) && text.includes('"messageAdded"'));

  await screenshot(page, 'graphiql');
  assertClean(browser);
  await browser.browser.close();
});
