// The shop in a real headless Chromium: register, log in, fill the cart, change
// and remove a line, check out, find the order in the history; a forged form is
// refused. Screenshots of every page go to $SHOP_TEST_OUTPUT/screenshots/.
// One shopd (and balancer) serves the file; every test opens its own browser
// and, where it needs one, registers its own shopper, so that any test runs alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, launchBrowser, output, registerAndLogin, root, bin, startShop, uniqueEmail } from './lib.mjs';

// SHOP_E2E_HTTPS=1 (shop_https.test.mjs): the same journey through the balancer's TLS listener.
const HTTPS = process.env.SHOP_E2E_HTTPS === '1';
const shots = join(output, HTTPS ? 'screenshots-https' : 'screenshots');
const PASSWORD = 'correct horse battery';

let shop;
let balancer;
let balancerLog = '';
let base;
const tlsArgs = [];

async function waitHealthy(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (balancer.exitCode !== null) throw new Error(`balancer exited (${balancer.exitCode}):\n${balancerLog}`);
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`balancer did not become healthy:\n${balancerLog}`);
}

// A fresh Chromium profile: no cookie from another test. Playwright's own
// requests (context.request) do not see Chromium's SPKI flag; the journey
// checks the certificate it got (securityDetails) instead.
function openBrowser() {
  return launchBrowser({ args: tlsArgs, ignoreHTTPSErrors: HTTPS });
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function flash(page) {
  return (await page.locator('.flash').textContent())?.trim();
}

async function cartCount(page) {
  return Number(await page.locator('#cart-count').textContent());
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  shop = await startShop({}, { logName: HTTPS ? 'e2e-https-shopd.log' : 'e2e-shopd.log' });
  base = shop.base;
  if (HTTPS) {
    // A local CA and certificate (tools/make-dev-cert.sh); Chromium trusts the
    // certificate's key by its SPKI hash, the way a pinned test certificate is trusted.
    const certs = join(shop.workdir, 'tls');
    execFileSync(join(root, 'tools', 'make-dev-cert.sh'), [certs, 'localhost', 'ec', 'localhost', '127.0.0.1']);
    const spki = execFileSync('sh', [
      '-c',
      `openssl pkey -in '${certs}/localhost-key.pem' -pubout -outform der | openssl dgst -sha256 -binary | base64`,
    ])
      .toString()
      .trim();
    tlsArgs.push(`--ignore-certificate-errors-spki-list=${spki}`);
    const [plain, tls] = [await freePort(), await freePort()];
    balancer = spawn(join(bin, 'balancer'), ['--env', '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        BALANCER_LISTEN: `127.0.0.1:${plain}`,
        BALANCER_ADMIN_LISTEN: '',
        BALANCER_BACKENDS: new URL(base).host,
        BALANCER_TLS_LISTEN: `127.0.0.1:${tls}`,
        BALANCER_TLS_CERT: join(certs, 'localhost.pem'),
        BALANCER_TLS_KEY: join(certs, 'localhost-key.pem'),
        BALANCER_HSTS_MAX_AGE: '600',
      },
    });
    balancer.stdout.on('data', (d) => (balancerLog = (balancerLog + d).slice(-200000)));
    balancer.stderr.on('data', (d) => (balancerLog = (balancerLog + d).slice(-200000)));
    await waitHealthy(`http://127.0.0.1:${plain}/healthz`, 10000);
    base = `https://127.0.0.1:${tls}`;
  }
});

after(async () => {
  try {
    if (balancer && balancer.exitCode === null) {
      const gone = new Promise((r) => balancer.once('exit', r));
      balancer.kill('SIGTERM');
      await gone;
    }
  } finally {
    if (shop) await shop.stop();
    if (balancer) writeFileSync(join(output, 'e2e-https-balancer.log'), balancerLog);
  }
});

test('a new visitor registers, shops, checks out and finds the order', async (t) => {
  const browser = await openBrowser();
  t.after(() => browser.close());
  const { page } = browser;
  const email = uniqueEmail('e2e');
  // Welcome page: explains the flow and links the way in.
  let res = await page.goto(`${base}/`);
  assert.equal(res.status(), 200);
  if (HTTPS) {
    const tls = await res.securityDetails();
    assert.match(tls.protocol, /^TLS 1\.[23]$/);
    assert.match(tls.issuer, /Shop local development CA/);
    assert.match(res.headers()['strict-transport-security'] || '', /max-age=600/);
  }
  assert.match(await page.locator('h1').textContent(), /Fresh fruit/);
  await shot(page, '01-home');

  // Register.
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL('**/browser/register');
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await shot(page, '02-register');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/browser/login');
  assert.match(await flash(page), /Your account is ready/);

  // A wrong password first: the message says so, the page stays.
  await page.fill('#email', email);
  await page.fill('#password', 'not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  assert.match(await flash(page), /Wrong email or password/);
  await shot(page, '03-login-wrong-password');

  // Log in.
  await page.fill('#password', PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/browser/inventory');
  assert.match(await flash(page), /Welcome/);
  assert.equal(await page.locator('#user-email').textContent(), email);
  assert.equal(await cartCount(page), 0);
  // Every product image is local and loaded.
  const images = page.locator('img.product-image');
  assert.ok((await images.count()) >= 8);
  const loaded = await images.evaluateAll((imgs) => imgs.every((i) => i.complete && i.naturalWidth > 0));
  assert.ok(loaded, 'all product images load');
  await shot(page, '04-inventory');

  // Add two products.
  const apple = page.locator('#product-1');
  await apple.locator('input[name=quantity]').fill('2');
  await apple.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/inventory#product-1');
  assert.match(await flash(page), /Added 2 × Apple to your cart/);
  assert.equal(await cartCount(page), 2);
  const banana = page.locator('#product-2');
  await banana.locator('input[name=quantity]').fill('3');
  await banana.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/browser/inventory#product-2');
  assert.match(await flash(page), /Added 3 × Banana to your cart/);
  assert.equal(await cartCount(page), 5);
  await shot(page, '05-inventory-added');

  // The cart: two lines, line totals, the order total.
  await page.locator('nav').getByRole('link', { name: /Cart/ }).click();
  await page.waitForURL('**/browser/cart');
  assert.equal(await page.locator('tr.cart-line').count(), 2);
  assert.equal((await page.locator('#line-1 .line-total').textContent()).trim(), '$1.00');
  assert.equal((await page.locator('#line-2 .line-total').textContent()).trim(), '$0.75');
  assert.equal((await page.locator('#order-total').textContent()).trim(), '$1.75');
  await shot(page, '06-cart');

  // Change a quantity.
  await page.fill('#cart-qty-1', '4');
  await page.locator('#line-1').getByRole('button', { name: 'Update' }).click();
  await page.waitForURL('**/browser/cart');
  assert.match(await flash(page), /Updated Apple: 4 in your cart/);
  assert.equal((await page.locator('#line-1 .line-total').textContent()).trim(), '$2.00');
  assert.equal((await page.locator('#order-total').textContent()).trim(), '$2.75');
  assert.equal(await cartCount(page), 7);

  // Remove one.
  await page.locator('#line-2').getByRole('button', { name: /Remove/ }).click();
  await page.waitForURL('**/browser/cart');
  assert.match(await flash(page), /Removed Banana from your cart/);
  assert.equal(await page.locator('tr.cart-line').count(), 1);
  assert.equal((await page.locator('#order-total').textContent()).trim(), '$2.00');
  await shot(page, '07-cart-after-changes');

  // The flash message shows once.
  await page.reload();
  assert.equal(await page.locator('.flash').count(), 0);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, '07-phone-cart');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Check out.
  await page.locator('#checkout').click();
  await page.waitForURL('**/browser/checkout?order=*');
  assert.match(await flash(page), /Your order has been placed/);
  assert.match(await page.locator('h1').textContent(), /Thank you/);
  const orderId = new URL(page.url()).searchParams.get('order');
  assert.match(orderId, /^[0-9a-f-]{36}$/);
  assert.equal((await page.locator('.order-id').textContent()).trim(), orderId);
  assert.equal((await page.locator('.order .order-total').textContent()).trim(), '$2.00');
  assert.equal(await cartCount(page), 0);
  await shot(page, '08-confirmation');

  // The order history.
  await page.locator('nav').getByRole('link', { name: 'Orders' }).click();
  await page.waitForURL('**/browser/orders');
  const order = page.locator(`#order-${orderId}`);
  assert.equal(await order.count(), 1);
  assert.match(await order.locator('.status').textContent(), /processed|Confirmed/);
  assert.match(await order.textContent(), /Apple/);
  await shot(page, '09-orders');

  // The same pages on a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/browser/inventory`);
  await shot(page, '10-phone-inventory');
  await page.goto(`${base}/browser/orders`);
  await shot(page, '11-phone-orders');
  await page.setViewportSize({ width: 1280, height: 800 });

  assert.deepEqual(browser.problems, [], 'no console errors, CSP violations or failed requests');
});

test('a forged form is refused and changes nothing', async (t) => {
  const browser = await openBrowser();
  t.after(() => browser.close());
  const { page } = browser;
  await registerAndLogin(page, base, uniqueEmail('e2e-forged'), PASSWORD);
  if (HTTPS) {
    // Over TLS the session cookie is Secure (shopd sees X-Forwarded-Proto: https from the balancer).
    const session = (await browser.context.cookies()).find((c) => c.name === 'session');
    assert.ok(session, 'no session cookie');
    assert.equal(session.secure, true, 'session cookie not Secure over HTTPS');
    assert.match(base, /^https:/);
  }
  await page.goto(`${base}/browser/inventory`);
  assert.equal(await cartCount(page), 0);
  // A form whose CSRF token is not this session's, as another site would send it.
  const form = page.locator('#product-3 form');
  await form.locator('input[name=csrf_token]').evaluate((el) => {
    el.value = 'forged';
  });
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/browser/cart/add')),
    form.getByRole('button', { name: 'Add to cart' }).click(),
  ]);
  assert.equal(response.status(), 403);
  await page.waitForLoadState();
  assert.match(await page.locator('h1').textContent(), /Not allowed/);
  assert.match(await page.locator('main').textContent(), /did not come from this site/);
  await shot(page, '12-csrf-refused');

  // And a POST without any token, straight from the browser's cookie jar.
  const direct = await browser.context.request.post(`${base}/browser/cart/add`, {
    form: { product_id: '3', quantity: '1' },
    maxRedirects: 0,
  });
  assert.equal(direct.status(), 403);

  await page.goto(`${base}/browser/cart`);
  assert.equal(await cartCount(page), 0, 'nothing was added');
  assert.match(await page.locator('main').textContent(), /Your cart is empty/);
});

test('unknown pages answer 404 and logging out ends the session', async (t) => {
  const browser = await openBrowser();
  t.after(() => browser.close());
  const { page } = browser;
  await registerAndLogin(page, base, uniqueEmail('e2e-logout'), PASSWORD);
  const res = await page.goto(`${base}/browser/nowhere`);
  assert.equal(res.status(), 404);
  assert.match(await page.locator('h1').textContent(), /Page not found/);
  await shot(page, '13-not-found');

  await page.goto(`${base}/browser/inventory`);
  await page.locator('header').getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(`${base}/`);
  assert.match(await flash(page), /You are logged out/);
  assert.equal(await page.locator('#user-email').count(), 0);
  await page.goto(`${base}/browser/orders`);
  await page.waitForURL('**/browser/login');
  assert.match(await flash(page), /Please log in first/);
  await shot(page, '14-login-required');
});

test('the server logged no crash or sanitizer report', () => {
  // Workers that die are replaced, so a crash would not show in the pages: read the log.
  assert.doesNotMatch(shop.log() + balancerLog, /AddressSanitizer|runtime error:|exited with status|killed by signal/);
});
