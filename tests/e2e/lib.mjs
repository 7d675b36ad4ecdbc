// What every browser test needs, so that each test file sets up its own shop
// and runs alone: a shopd on a free loopback port with an in-memory database
// (with SHOP_TEST_DATABASE=postgres, a fresh database of its own in the test
// server that SHOP_TEST_PG_HOST and SHOP_TEST_PG_PORT name: tests/run.sh
// --postgres), a headless Chromium with a fresh profile, and an accessibility
// audit.
//
//   const shop = await startShop({ ADMIN_EMAILS: 'owner@example.com' });
//   const browser = await launchBrowser();
//   await browser.page.goto(`${shop.base}/`);
//   assert.deepEqual(await axeViolations(browser.page), []);
//   await browser.close(); await shop.stop();
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = resolve(process.env.SHOP_ROOT || join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
export const bin = resolve(process.env.SHOP_BIN || join(root, 'bin'));
const engine = process.env.SHOP_TEST_DATABASE || 'sqlite';
// The PostgreSQL pass keeps its logs and screenshots apart: both passes may run at once.
export const output = join(
  resolve(process.env.SHOP_TEST_OUTPUT || join(root, 'test-output')),
  engine === 'sqlite' ? '' : 'postgres',
);
// NODE_PATH does not apply to ES module imports: resolve packages from the project's tools folder.
export const require = createRequire(join(root, 'tools', 'node_modules', '/'));

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

// The database of one shop: { url, drop() }.
function shopDatabase() {
  if (engine === 'sqlite') return { url: 'sqlite:///:memory:', drop() {} };
  if (engine !== 'postgres' && engine !== 'postgresql') {
    throw new Error(`SHOP_TEST_DATABASE=${engine}: sqlite or postgres`);
  }
  const host = process.env.SHOP_TEST_PG_HOST;
  const port = process.env.SHOP_TEST_PG_PORT;
  if (!host || !port) throw new Error('SHOP_TEST_DATABASE=postgres needs SHOP_TEST_PG_HOST and SHOP_TEST_PG_PORT');
  const name = `e2e_${randomBytes(8).toString('hex')}`;
  const psql = (sql) =>
    execFileSync(
      'psql',
      ['-X', '-q', '-h', host, '-p', port, '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  psql(`CREATE DATABASE ${name}`);
  return {
    url: `postgresql:///${name}?host=${encodeURIComponent(host)}&port=${port}&user=postgres`,
    drop() {
      try {
        psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch {
        // the server is gone already: its folder goes with it
      }
    },
  };
}

// Starts shopd (master and workers in their own process group) and waits for
// /healthz. env adds to or overrides the test settings. Returns
// { base, workdir, log(), stop() }; stop() also writes the log to
// $SHOP_TEST_OUTPUT/<logName> when logName is given.
export async function startShop(env = {}, { logName } = {}) {
  const workdir = mkdtempSync(join(tmpdir(), 'shop-e2e-'));
  const database = shopDatabase();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let log = '';
  const child = spawn(join(bin, 'shopd'), [], {
    cwd: workdir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      SHOPD_LISTEN: `127.0.0.1:${port}`,
      DATABASE_URL: database.url,
      SHOP_ENV: 'test',
      SECRET_KEY: randomBytes(32).toString('hex'),
      RATELIMIT_ENABLED: '0',
      DISPATCHER_ENABLED: '0',
      TEMPLATES_DIR: join(root, 'templates'),
      STATIC_DIR: join(root, 'templates', 'static'),
      SHOPD_WORKERS: '2',
      ...env,
    },
  });
  const keep = (d) => {
    log = (log + d).slice(-200000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid, 'SIGTERM');
        const timer = new Promise((r) => setTimeout(() => r('timeout'), 5000));
        if ((await Promise.race([exited, timer])) === 'timeout') {
          process.kill(-child.pid, 'SIGKILL');
          await exited;
        }
      } catch {
        // already gone
      }
    }
    if (logName) {
      mkdirSync(output, { recursive: true });
      writeFileSync(join(output, logName), log);
    }
    rmSync(workdir, { recursive: true, force: true });
    database.drop();
  }

  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`shopd exited (${child.exitCode}):\n${log}`);
    }
    try {
      if ((await fetch(`${base}/healthz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`shopd did not become healthy:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base, workdir, log: () => log, stop };
}

// A headless Chromium with a fresh profile. Returns { context, page, problems,
// close() }; problems collects console errors (CSP violations among them) and
// failed subresource requests. javaScriptEnabled: false shows the pages as a
// browser without JavaScript does. ignoreHTTPSErrors is for Playwright's own
// requests (context.request), which do not see Chromium's certificate flags.
export async function launchBrowser({
  args = [],
  viewport = { width: 1280, height: 800 },
  javaScriptEnabled = true,
  ignoreHTTPSErrors = false,
} = {}) {
  const { chromium } = require('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'shop-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...args,
    ],
    viewport,
    javaScriptEnabled,
    ignoreHTTPSErrors,
  });
  context.setDefaultTimeout(10000);
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  async function close() {
    try {
      await context.close();
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  }
  return { context, page, problems, close };
}

// An address no other test (nor an earlier run on the same shop) has used.
let emailCount = 0;
export function uniqueEmail(prefix) {
  emailCount += 1;
  return `${prefix}-${Date.now()}-${process.pid}-${emailCount}@example.com`;
}

// Registers a new account through the register page and logs in through the
// login page, so that a test starts from its own session and empty cart.
// Ends on the inventory page.
export async function registerAndLogin(page, base, email, password) {
  await page.goto(`${base}/browser/register`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/browser/login');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/browser/inventory');
}

const axeSource = () => readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// Runs axe-core (WCAG 2 A and AA rules and best practices) on the page as it
// is now. Returns the violations as short strings ("rule: target, ..."), so
// that a failing assert.deepEqual(…, []) says what is wrong and where.
// The script is evaluated, not added as a <script>, so the page's CSP does
// not need to allow it.
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource());
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  return found;
}

export async function screenshot(page, folder, name) {
  const dir = join(output, folder);
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}
