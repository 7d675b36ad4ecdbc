// The catalog in a real headless Chromium: search, sort and page through the
// inventory, open a product's page and add it to the cart from there, see a
// changed price in the cart and confirm it at checkout, and read the note
// about a product that was deleted from the cart. Every state shown passes
// axe-core on a desktop and a phone viewport (screenshots go to
// $SHOP_TEST_OUTPUT/screenshots-catalog/); the last test walks the same
// forms and links again with JavaScript off, as plain HTML must allow.
// Each test starts its own shopd (an in-memory database with the eight seed
// products) and browser, so that any test runs alone and in any order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axeViolations, launchBrowser, registerAndLogin, screenshot, startShop, uniqueEmail } from './lib.mjs';

const ADMIN = 'owner@example.com';
const PASSWORD = 'correct horse battery';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// The current test's shop, browser and admin session (tests run one after another).
let shop;
let browser;
let adminCookie;

// A fresh shopd, an admin logged in over the API and a fresh browser, stopped
// when test t ends. The shopd log goes to $SHOP_TEST_OUTPUT/e2e-catalog-<log>.log.
async function freshShop(t, log) {
  shop = await startShop({ ADMIN_EMAILS: ADMIN }, { logName: `e2e-catalog-${log}-shopd.log` });
  const stopShop = shop.stop;
  t.after(() => stopShop());
  browser = await launchBrowser();
  const closeBrowser = browser.close;
  t.after(() => closeBrowser());
  adminCookie = await apiLogin(ADMIN);
}

// The 18 berries that make two pages of 24 with the eight seed products (ids 9 to 26).
async function addBerries() {
  for (let i = 1; i <= 18; i++) {
    await admin('POST', '/products', { name: `Berry ${i}`, description: 'A small berry', price_cents: 100 + i, stock: 9 });
  }
}

// Registers and logs in over the JSON API; returns the session cookie.
async function apiLogin(email) {
  const body = JSON.stringify({ email, password: PASSWORD });
  const headers = { 'Content-Type': 'application/json' };
  await fetch(`${shop.base}/register`, { method: 'POST', headers, body });
  const res = await fetch(`${shop.base}/login`, { method: 'POST', headers, body });
  assert.equal(res.status, 200);
  return res.headers.get('set-cookie').split(';')[0];
}

async function admin(method, path, body) {
  const res = await fetch(`${shop.base}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Cookie: adminCookie },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// axe-core on desktop and phone, a screenshot of each, and no page wider than the phone.
async function audit(label) {
  const { page } = browser;
  for (const [name, viewport] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ]) {
    await page.setViewportSize(viewport);
    assert.deepEqual(await axeViolations(page), [], `axe violations on ${label} (${name})`);
    const broken = await page.locator('main img').evaluateAll((imgs) =>
      imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.getAttribute('src')),
    );
    assert.deepEqual(broken, [], `${label}: images that do not load`);
    assert.deepEqual(browser.problems, [], `${label}: console errors or failed requests`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(wide, false, `${label} (${name}) scrolls sideways`);
    await screenshot(page, 'screenshots-catalog', `${label}-${name}`);
  }
  await page.setViewportSize(DESKTOP);
}

const text = async (selector) => (await browser.page.locator(selector).first().textContent()).trim();
const cardIds = () =>
  browser.page.locator('li.product').evaluateAll((lis) => lis.map((li) => Number(li.id.replace('product-', ''))));

test('search, sort and pages of the inventory', { timeout: 120000 }, async (t) => {
  await freshShop(t, 'search');
  const { page } = browser;
  await page.goto(`${shop.base}/browser/inventory`);
  await audit('inventory');

  await page.fill('#search-q', 'an');
  await page.selectOption('#search-sort', 'price');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/\/browser\/inventory\?q=an&sort=price/);
  assert.deepEqual(await cardIds(), [2, 8, 3, 4], 'Banana, Lemon, Orange, Strawberries by price');
  assert.match(await text('#search-summary'), /4 products match/);
  assert.equal(await page.inputValue('#search-q'), 'an', 'the form keeps the search');
  assert.equal(await page.inputValue('#search-sort'), 'price');
  await audit('inventory-search');

  await page.fill('#search-q', 'durian');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=durian/);
  assert.match(await text('#no-match'), /No product matches “durian”/);
  assert.equal(await page.locator('li.product').count(), 0);
  await audit('inventory-no-match');
  await page.locator('#no-match').getByRole('link', { name: 'show all products' }).click();
  await page.waitForURL(/\/browser\/inventory$/);
  assert.equal(await page.locator('li.product').count(), 8);

  // Enough products for two pages of 24.
  await addBerries();
  await page.goto(`${shop.base}/browser/inventory?sort=-id`);
  assert.equal(await page.locator('li.product').count(), 24);
  assert.match(await text('.page-of'), /Page 1 of 2/);
  await audit('inventory-page-1');
  await page.getByRole('link', { name: /Next page/ }).click();
  await page.waitForURL(/sort=-id&page=2/);
  assert.deepEqual(await cardIds(), [2, 1]);
  assert.match(await text('.page-of'), /Page 2 of 2/);
  assert.equal(await page.getByRole('link', { name: /Next page/ }).count(), 0);
  await audit('inventory-page-2');
  await page.getByRole('link', { name: /Previous page/ }).click();
  await page.waitForURL(/sort=-id&page=1/);
  assert.equal(await page.locator('li.product').first().getAttribute('id'), 'product-26');

  // A bad address is an HTML page that says why.
  const res = await page.goto(`${shop.base}/browser/inventory?sort=cheapest`);
  assert.equal(res.status(), 400);
  assert.match(await text('main'), /cannot be shown that way/);
  await audit('inventory-bad-sort');
});

test('a product page shows the product and adds it to the cart', { timeout: 120000 }, async (t) => {
  await freshShop(t, 'product');
  const { page } = browser;
  await page.goto(`${shop.base}/browser/inventory`);
  await page.locator('#product-3').getByRole('link', { name: 'Orange' }).click();
  await page.waitForURL('**/browser/products/3');
  assert.equal(await text('h1'), 'Orange');
  assert.equal(await text('#product-price'), '$0.75');
  assert.match(await text('#product-stock'), /80 in stock/);
  assert.match(await text('.product-detail-desc'), /Juicy oranges/);
  const loaded = await page.locator('.product-detail-image').evaluate((i) => i.complete && i.naturalWidth > 0);
  assert.ok(loaded, 'the product image loads');
  assert.equal(await page.title(), 'Orange · Fruit Shop');
  await audit('product');

  // Desktop: image beside the text; phone: above it.
  const layout = async () => {
    const img = await page.locator('.product-detail-image').boundingBox();
    const h1 = await page.locator('h1').boundingBox();
    return { beside: h1.x >= img.x + img.width - 1, above: h1.y >= img.y + img.height - 1 };
  };
  assert.equal((await layout()).beside, true, 'desktop: side by side');
  await page.setViewportSize(PHONE);
  assert.equal((await layout()).above, true, 'phone: image above the text');
  await page.setViewportSize(DESKTOP);

  // Logged out, adding asks for a login first.
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL(/\/browser\/login/);

  await registerAndLogin(page, shop.base, uniqueEmail('catalog'), PASSWORD);

  await page.goto(`${shop.base}/browser/products/3`);
  await page.fill('#qty-3', '3');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/products/3');
  assert.match(await text('.flash'), /Added 3 × Orange to your cart/);
  await audit('product-added');

  const res = await page.goto(`${shop.base}/browser/products/9999`);
  assert.equal(res.status(), 404);
  assert.match(await text('main'), /no such product/);
  await audit('product-404');
});

test('a changed price is marked in the cart and confirmed at checkout', { timeout: 120000 }, async (t) => {
  await freshShop(t, 'price');
  const { page } = browser;
  // A shopper puts 3 oranges at $0.75 in the cart.
  await registerAndLogin(page, shop.base, uniqueEmail('price'), PASSWORD);
  await page.goto(`${shop.base}/browser/products/3`);
  await page.fill('#qty-3', '3');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/products/3');
  assert.match(await text('.flash'), /Added 3 × Orange to your cart/);
  await admin('PUT', '/products/3', { price_cents: 90 });
  await page.goto(`${shop.base}/browser/cart`);
  const cell = page.locator('#line-3 .cart-price');
  assert.equal(await cell.locator('del').textContent(), '$0.75');
  assert.equal(await cell.locator('strong').textContent(), '$0.90');
  assert.equal(await text('#order-total'), '$2.70');
  assert.match(await text('#prices-changed'), /Some prices changed/);
  await audit('cart-price-changed');

  await page.locator('#checkout').click();
  await page.waitForURL('**/browser/checkout/review');
  assert.equal(await text('h1'), 'Prices changed');
  assert.equal(await text('#changed-3 .old-price'), '$0.75');
  assert.match(await text('#changed-3 .new-price'), /\$0\.90/);
  await audit('checkout-review');

  // It changes again before the shopper confirms: asked once more, with the new total.
  await admin('PUT', '/products/3', { price_cents: 95 });
  await page.getByRole('button', { name: /Confirm and check out/ }).click();
  await page.waitForURL('**/browser/checkout/review');
  assert.match(await text('.flash'), /Prices changed again/);
  assert.equal(await text('#order-total'), '$2.85');
  await audit('checkout-review-again');

  await page.getByRole('button', { name: /Confirm and check out · \$2\.85/ }).click();
  await page.waitForURL('**/browser/checkout?order=*');
  assert.match(await text('h1'), /Thank you/);
  assert.match(await text('main'), /\$2\.85/);
});

test('a product deleted from the cart is named once on the next visit', { timeout: 120000 }, async (t) => {
  await freshShop(t, 'deleted');
  const { page } = browser;
  await registerAndLogin(page, shop.base, uniqueEmail('deleted'), PASSWORD);
  await page.goto(`${shop.base}/browser/products/6`);
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/products/6');
  await page.goto(`${shop.base}/browser/products/1`);
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/products/1');
  await admin('DELETE', '/products/6');

  await page.goto(`${shop.base}/browser/cart`);
  assert.equal(await text('.flash.notice'), 'Pineapple is no longer sold and was removed from your cart.');
  assert.equal(await page.locator('tr.cart-line').count(), 1, 'only the apple is left');
  await audit('cart-product-removed');
  await page.reload();
  assert.equal(await page.locator('.flash').count(), 0, 'said once');

  const res = await page.goto(`${shop.base}/browser/products/6`);
  assert.equal(res.status(), 404);
});

test('search, pages, the product page and the price review work without JavaScript', { timeout: 120000 }, async (t) => {
  await freshShop(t, 'nojs');
  await addBerries();
  // axe-core needs JavaScript, so this browser only walks the forms and links.
  const nojs = await launchBrowser({ javaScriptEnabled: false });
  try {
    const { page } = nojs;
    await registerAndLogin(page, shop.base, uniqueEmail('nojs'), PASSWORD);

    await page.fill('#search-q', 'BERRY');
    await page.selectOption('#search-sort', '-price');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=BERRY&sort=-price/);
    const ids = await page.locator('li.product').evaluateAll((lis) => lis.map((li) => li.id));
    assert.deepEqual(
      ids,
      Array.from({ length: 18 }, (_, i) => `product-${26 - i}`),
      'the berries, dearest first',
    );

    await page.goto(`${shop.base}/browser/inventory`);
    await page.getByRole('link', { name: /Next page/ }).click();
    await page.waitForURL(/page=2/);
    assert.match((await page.locator('.page-of').textContent()).trim(), /Page 2 of 2/);
    await page.getByRole('link', { name: /Previous page/ }).click();
    await page.waitForURL(/page=1/);

    await page.getByRole('link', { name: 'Lemon' }).click();
    await page.waitForURL('**/browser/products/8');
    await page.fill('#qty-8', '2');
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await page.waitForURL('**/browser/products/8');
    assert.match((await page.locator('.flash').textContent()).trim(), /Added 2 × Lemon/);

    await admin('PUT', '/products/8', { price_cents: 45 });
    await page.goto(`${shop.base}/browser/cart`);
    assert.equal(await page.locator('#line-8 .cart-price del').textContent(), '$0.40');
    await page.locator('#checkout').click();
    await page.waitForURL('**/browser/checkout/review');
    await page.getByRole('button', { name: /Confirm and check out · \$0\.90/ }).click();
    await page.waitForURL('**/browser/checkout?order=*');
    assert.match((await page.locator('h1').textContent()).trim(), /Thank you/);
  } finally {
    await nojs.close();
  }
});
