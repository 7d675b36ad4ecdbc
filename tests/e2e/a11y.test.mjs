// axe-core on every page a shopper meets, in each state the journey shows it
// (empty and filled cart, a flash message, an error page), on a desktop and a
// phone viewport. Runs alone: its own shopd and browser.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { axeViolations, launchBrowser, screenshot, startShop } from './lib.mjs';

let shop;
let browser;

before(async () => {
  shop = await startShop({}, { logName: 'e2e-a11y-shopd.log' });
  browser = await launchBrowser();
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    if (shop) await shop.stop();
  }
});

async function audit(label) {
  const { page } = browser;
  for (const [name, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ]) {
    await page.setViewportSize(viewport);
    assert.deepEqual(await axeViolations(page), [], `axe violations on ${label} (${name})`);
    await screenshot(page, 'screenshots-a11y', `${label}-${name}`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

test('every shopper page passes axe-core on desktop and phone', async () => {
  const { page } = browser;
  const email = `a11y-${Date.now()}@example.com`;
  await page.goto(`${shop.base}/`);
  await audit('home');
  await page.goto(`${shop.base}/browser/register`);
  await audit('register');
  await page.fill('#email', email);
  await page.fill('#password', 'correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/browser/login');
  await audit('login-with-flash');
  await page.fill('#email', email);
  await page.fill('#password', 'wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await audit('login-wrong-password');
  await page.fill('#password', 'correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/browser/inventory');
  await audit('inventory');
  await page.goto(`${shop.base}/browser/cart`);
  await audit('cart-empty');
  await page.goto(`${shop.base}/browser/inventory`);
  await page.locator('#product-1').getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/inventory#product-1');
  await page.goto(`${shop.base}/browser/cart`);
  await audit('cart-filled');
  await page.locator('#checkout').click();
  await page.waitForURL('**/browser/checkout?order=*');
  await audit('confirmation');
  await page.goto(`${shop.base}/browser/orders`);
  await audit('orders');
  const res = await page.goto(`${shop.base}/browser/nowhere`);
  assert.equal(res.status(), 404);
  await audit('not-found');
  await page.goto(`${shop.base}/browser/logout`);
  await audit('logout');
  assert.deepEqual(browser.problems, [], 'no console errors, CSP violations or failed requests');
});
