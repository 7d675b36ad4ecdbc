// The account, order and admin pages in a real headless Chromium, against a
// real shopd whose dispatcher sends to a stand-in DynamoDB endpoint (a small
// HTTP server here that refuses, then accepts, PutItem): a shopper follows a
// failed order without ever reading DynamoDB's text, changes the password
// (another browser's session ends, this one stays) and logs out everywhere;
// an admin manages the catalog, uploads an image (an SVG is refused) and sends
// the failed order again until it is sent. Every page state passes axe-core on
// a desktop and a phone viewport and needs no JavaScript (the pages have none).
// The stand-in DynamoDB serves the file; each test starts its own shopd and
// browser and places its own failed order, so that any test runs alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { axeViolations, freePort, launchBrowser, screenshot, startShop, uniqueEmail } from './lib.mjs';

const OWNER = 'owner@example.com';
const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a longer, better passphrase';
const NOTICE = 'We could not send your order yet; we are on it.';
const DYNAMO_TEXT = 'One or more parameter values were invalid: an internal detail for the admins';
const SHOTS = 'screenshots-account-admin';
// A 2x2 PNG, as a browser would upload it.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==',
  'base64',
);

let dynamo;
let dynamoPort;
let dynamoMode = 'refuse';
const dynamoCalls = [];
// The current test's shop and browser (tests run one after another).
let shop;
let browser;

before(async () => {
  // Answers PutItem the way DynamoDB does: a ValidationException (which the
  // dispatcher parks as failed), or success once dynamoMode is 'accept'.
  dynamo = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      dynamoCalls.push({ target: req.headers['x-amz-target'], mode: dynamoMode });
      res.setHeader('Content-Type', 'application/x-amz-json-1.0');
      if (dynamoMode === 'refuse') {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ValidationException', message: DYNAMO_TEXT }));
      } else {
        res.end('{}');
      }
    });
  });
  dynamoPort = await freePort();
  await new Promise((ok) => dynamo.listen(dynamoPort, '127.0.0.1', ok));
});

after(async () => {
  if (dynamo) dynamo.close();
});

// A fresh shopd whose dispatcher sends to the stand-in (refusing again) and a
// fresh browser, both stopped when test t ends.
async function freshShop(t, log) {
  dynamoMode = 'refuse';
  shop = await startShop(
    {
      ADMIN_EMAILS: OWNER,
      DISPATCHER_ENABLED: '1',
      DYNAMODB_ENDPOINT: `http://127.0.0.1:${dynamoPort}`,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    },
    { logName: `e2e-account-admin-${log}-shopd.log` },
  );
  const stopShop = shop.stop;
  t.after(() => stopShop());
  browser = await launchBrowser();
  const closeBrowser = browser.close;
  t.after(() => closeBrowser());
}

async function audit(page, label) {
  assert.equal(await page.evaluate(() => document.scripts.length), 0, `${label}: the page needs no script`);
  for (const [name, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ]) {
    await page.setViewportSize(viewport);
    assert.deepEqual(await axeViolations(page), [], `axe violations on ${label} (${name})`);
    await screenshot(page, SHOTS, `${label}-${name}`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function register(page, email) {
  const r = await page.request.post(`${shop.base}/register`, { data: { email, password: PASSWORD } });
  assert.equal(r.status(), 201);
}

async function login(page, email, password = PASSWORD) {
  await page.goto(`${shop.base}/browser/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/browser/inventory');
}

// Reloads url until text shows (the dispatcher works in the background).
async function waitForText(page, url, text, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await page.goto(url);
    if ((await page.content()).includes(text)) return;
    if (Date.now() > deadline) throw new Error(`"${text}" never showed on ${url}:\n${shop.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// A new shopper registers, logs in on page and checks out an apple; the
// dispatcher tries once, DynamoDB refuses for good: the order is parked as
// failed. Returns the order's id once its page shows the notice.
async function placeFailedOrder(page, email) {
  await register(page, email);
  await login(page, email);
  await page.locator('#product-1').getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/inventory#product-1');
  await page.goto(`${shop.base}/browser/cart`);
  await page.locator('#checkout').click();
  await page.waitForURL('**/browser/checkout?order=*');
  const orderId = new URL(page.url()).searchParams.get('order');
  assert.match(orderId, /^[0-9a-f-]{36}$/);
  assert.ok((await page.content()).includes(orderId), 'the confirmation shows the order');
  await waitForText(page, `${shop.base}/browser/orders/${orderId}`, NOTICE);
  return orderId;
}

test('a shopper follows a failed order, changes the password and logs out everywhere', async (t) => {
  await freshShop(t, 'shopper');
  const { page } = browser;
  const SHOPPER = uniqueEmail('shopper');
  const orderId = await placeFailedOrder(page, SHOPPER);
  const html = await page.content();
  assert.ok(!html.includes(DYNAMO_TEXT) && !html.includes('ValidationException'), 'no DynamoDB text for shoppers');
  assert.equal(await page.locator('#order-status').innerText(), 'Needs attention');
  assert.equal(await page.locator('#order-sent').innerText(), 'Not yet');
  await audit(page, 'order-failed');
  const api = await page.request.get(`${shop.base}/orders/${orderId}`);
  assert.equal((await api.json()).notice, NOTICE);

  // The account page links the recent order to its page.
  await page.getByRole('link', { name: 'Account' }).click();
  await page.waitForURL('**/browser/account');
  assert.equal(await page.locator('#account-email').innerText(), SHOPPER);
  await audit(page, 'account');
  await page.getByRole('link', { name: orderId }).click();
  await page.waitForURL(`**/browser/orders/${orderId}`);

  // A second browser logged in as the same shopper.
  const other = await launchBrowser();
  try {
    await login(other.page, SHOPPER);
    await page.goto(`${shop.base}/browser/account`);
    await page.fill('#current_password', 'not my password');
    await page.fill('#new_password', NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    assert.ok((await page.locator('.flash-error').innerText()).includes('current password is not right'));
    await audit(page, 'account-wrong-password');
    await page.fill('#current_password', PASSWORD);
    await page.fill('#new_password', 'short');
    // The browser's own minlength check would stop the form: skip it, as a script could.
    await page.locator('#new_password').evaluate((el) => el.removeAttribute('minlength'));
    await page.getByRole('button', { name: 'Change password' }).click();
    assert.ok((await page.locator('.flash-error').innerText()).includes('too short'));
    await audit(page, 'account-short-password');
    await page.fill('#current_password', PASSWORD);
    await page.fill('#new_password', NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL('**/browser/account');
    assert.ok((await page.locator('.flash-success').innerText()).includes('password has been changed'));
    await audit(page, 'account-password-changed');

    // The other browser's session ended; this one goes on.
    await other.page.goto(`${shop.base}/browser/account`);
    assert.ok(other.page.url().endsWith('/browser/login'), `other browser at ${other.page.url()}`);
    await login(other.page, SHOPPER, NEW_PASSWORD);
    await page.goto(`${shop.base}/browser/cart`);
    assert.ok(page.url().endsWith('/browser/cart'), 'still logged in here');

    // Log out everywhere: both browsers are out.
    await page.goto(`${shop.base}/browser/account`);
    await page.getByRole('button', { name: 'Log out everywhere' }).click();
    await page.waitForURL('**/browser/login');
    assert.ok((await page.locator('.flash').innerText()).includes('logged out on every device'));
    await audit(page, 'logged-out-everywhere');
    await other.page.goto(`${shop.base}/browser/orders`);
    assert.ok(other.page.url().endsWith('/browser/login'), 'the other browser is logged out too');
    assert.deepEqual(other.problems, []);
  } finally {
    await other.close();
  }

  // A shopper is refused the admin pages with an HTML page.
  await login(page, SHOPPER, NEW_PASSWORD);
  const refused = await page.goto(`${shop.base}/browser/admin/products`);
  assert.equal(refused.status(), 403);
  assert.ok((await page.content()).includes('administrators only'));
  await audit(page, 'admin-refused');
  await page.goto(`${shop.base}/browser/logout`);
  await page.getByRole('main').getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(`${shop.base}/`);
  assert.deepEqual(browser.problems, [], 'no console errors, CSP violations or failed requests');
});

test('an admin manages the catalog, uploads an image and sends the failed order again', async (t) => {
  await freshShop(t, 'admin');
  const { page } = browser;
  // A shopper's failed order, placed in a browser of its own.
  const SHOPPER = uniqueEmail('shopper');
  const shopper = await launchBrowser();
  let orderId;
  try {
    orderId = await placeFailedOrder(shopper.page, SHOPPER);
    assert.deepEqual(shopper.problems, []);
  } finally {
    await shopper.close();
  }
  await register(page, OWNER);
  await login(page, OWNER);
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.waitForURL('**/browser/admin/products');
  assert.match(await page.locator('#stock-1').inputValue(), /^[0-9]+$/, 'the list shows the stock');
  await audit(page, 'admin-products');

  // Create: a bad price first, then a good product.
  await page.fill('#new-name', 'Dragon fruit');
  await page.fill('#new-description', 'Pink outside, speckled inside');
  await page.fill('#new-price', 'cheap');
  await page.fill('#new-stock', '12');
  await page.getByRole('button', { name: 'Create product' }).click();
  assert.ok((await page.locator('.flash-error').innerText()).includes('Please enter the price'));
  assert.equal(await page.locator('#new-name').inputValue(), 'Dragon fruit', 'what was typed stays');
  await audit(page, 'admin-create-error');
  await page.fill('#new-price', '4.50');
  await page.getByRole('button', { name: 'Create product' }).click();
  await page.waitForURL('**/browser/admin/products/*');
  const productUrl = page.url();
  const id = Number(productUrl.split('/').pop());
  assert.ok(id > 0);
  await audit(page, 'admin-product-created');

  // Upload: an SVG named .png is refused, a PNG is stored and shown.
  const svgPath = join(shop.workdir, 'fake.png');
  writeFileSync(svgPath, '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
  await page.setInputFiles('#image', svgPath);
  await page.getByRole('button', { name: 'Upload image' }).click();
  assert.ok((await page.locator('.flash-error').innerText()).includes('not a PNG, JPEG or WebP image'));
  await audit(page, 'admin-upload-refused');
  await page.setInputFiles('#image', { name: 'dragon.png', mimeType: 'image/png', buffer: PNG });
  await page.getByRole('button', { name: 'Upload image' }).click();
  await page.waitForURL(productUrl);
  assert.ok((await page.locator('.flash-success').innerText()).includes('new image is in place'));
  const src = await page.locator('#product-image').getAttribute('src');
  assert.match(src, /^\/uploads\/[0-9a-f]{32}\.png$/);
  assert.equal(await page.locator('#product-image').evaluate((img) => img.naturalWidth), 2, 'the image loads');
  await audit(page, 'admin-product-image');
  const served = await page.request.get(`${shop.base}${src}`);
  assert.equal(served.headers()['content-type'], 'image/png');
  assert.match(served.headers()['cache-control'], /immutable/);
  assert.deepEqual(Buffer.from(await served.body()), PNG);

  // Edit, then change the stock from the list.
  await page.fill('#name', 'Red dragon fruit');
  await page.fill('#price', '5.25');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.waitForURL(productUrl);
  assert.equal(await page.locator('#name').inputValue(), 'Red dragon fruit');
  await page.goto(`${shop.base}/browser/admin/products`);
  await page.fill(`#stock-${id}`, '3');
  await page.locator(`#admin-product-${id}`).getByRole('button', { name: /^Set/ }).click();
  await page.waitForURL('**/browser/admin/products*');
  assert.ok((await page.locator('.flash-success').innerText()).includes('is now 3'));
  assert.equal(await page.locator(`#stock-${id}`).inputValue(), '3');
  await audit(page, 'admin-stock-changed');
  await page.goto(`${shop.base}/browser/inventory`);
  const card = page.locator(`#product-${id}`);
  assert.ok((await card.innerText()).includes('Red dragon fruit'));
  assert.ok((await card.innerText()).includes('$5.25'));
  assert.equal(await card.locator('img').getAttribute('src'), src, 'the shop shows the uploaded image');

  // Delete.
  await page.goto(productUrl);
  await page.locator('#delete-product').click();
  await page.waitForURL('**/browser/admin/products');
  assert.ok((await page.locator('.flash-success').innerText()).includes('Deleted Red dragon fruit'));
  assert.equal(await page.locator(`#admin-product-${id}`).count(), 0);
  assert.equal((await page.request.get(`${shop.base}/products/${id}`)).status(), 404);

  // Orders: the failed one with DynamoDB's text, sent again once DynamoDB accepts.
  await page.getByRole('navigation', { name: 'Admin' }).getByRole('link', { name: 'Orders' }).click();
  await page.waitForURL('**/browser/admin/orders');
  const row = page.locator(`#admin-order-${orderId}`);
  assert.ok((await row.innerText()).includes(DYNAMO_TEXT), 'admins read the stored error');
  assert.ok((await row.innerText()).includes(SHOPPER));
  await audit(page, 'admin-orders-failed');
  const before = dynamoCalls.length;
  dynamoMode = 'accept';
  await row.getByRole('button', { name: /Send again/ }).click();
  await page.waitForURL('**/browser/admin/orders');
  assert.ok((await page.locator('.flash-success').innerText()).includes('queued to be sent again'));
  await waitForText(page, `${shop.base}/browser/admin/orders`, 'status-sent');
  assert.ok(dynamoCalls.length > before, 'the dispatcher sent it again');
  assert.equal(await page.locator(`#admin-order-${orderId}`).getByRole('button').count(), 0, 'nothing to resend');
  await audit(page, 'admin-orders-sent');
  const api = await page.request.get(`${shop.base}/admin/orders`);
  assert.equal((await api.json()).find((o) => o.order_id === orderId).status, 'sent');
  assert.ok(shop.log().includes(`admin: ${OWNER} sent order ${orderId} again`), 'the action is logged');
  assert.ok(shop.log().includes(`admin: ${OWNER} uploaded image`), 'the upload is logged');
  assert.deepEqual(browser.problems, [], 'no console errors, CSP violations or failed requests');
});
