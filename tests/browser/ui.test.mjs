#!/usr/bin/env node
// ui.test.mjs — headless-browser test of the management UI (crates/server/ui) against a
// running server: logs in, creates an administrator user on the admin page, creates a queue,
// publishes to it and gets the message back on the queue page, moves messages (Warren only),
// waits for the overview charts, visits every list page and saves a screenshot of each.
//
//   WARREN_MGMT_URL=http://127.0.0.1:15672 [WARREN_USER=guest WARREN_PASS=guest]
//   [SCREENSHOT_DIR=target/ui-screenshots] [CHROMIUM=/usr/bin/chromium] node ui.test.mjs
//
// Every wait is bounded (15 s a step, 3 min in all). Exits non-zero on any failure,
// including an uncaught error or console.error in the page.

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BASE = (process.env.WARREN_MGMT_URL || 'http://127.0.0.1:15672').replace(/\/+$/, '');
const USER = process.env.WARREN_USER || 'guest';
const PASS = process.env.WARREN_PASS || 'guest';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = path.resolve(REPO, process.env.SCREENSHOT_DIR || 'target/ui-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15_000;
const TOTAL_MS = 180_000;

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const names = {
  user: `ui-test-user-${run}`,
  queue: `ui-test-q-${run}`,
  dest: `ui-test-dest-${run}`,
  payload: `Hello from the Warren UI test ${run} ✓`,
};
const results = { passed: 0, failed: 0, skipped: 0 };
const pageProblems = [];

/** Direct API call with the test credentials (setup, verification, cleanup). */
async function apiCall(method, p, body) {
  const res = await fetch(`${BASE}/api${p}`, {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /api${p} → HTTP ${res.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}

const enc = encodeURIComponent;

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    if (pageProblems.length) throw new Error(`page reported errors:\n  ${pageProblems.splice(0).join('\n  ')}`);
    results.passed += 1;
    console.log(`ok - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    results.failed += 1;
    console.log(`not ok - ${name}\n  ${String(err?.message || err).split('\n').join('\n  ')}`);
    throw err;
  }
}

function skip(name, why) {
  results.skipped += 1;
  console.log(`skip - ${name}: ${why}`);
}

async function shot(page, file) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(SHOTS, file), fullPage: true });
}

/** Click a main-menu entry and wait for its page heading. */
async function openSection(page, linkText, heading) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: linkText, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
}

/** Wait until the page's server-paged table has loaded. */
async function tableReady(page) {
  await page.locator('.paged[data-state="ready"]').waitFor();
}

async function main(page, product) {
  const isRabbit = /rabbitmq/i.test(product);

  await step('login page rejects a wrong password', async () => {
    await page.goto(`${BASE}/`);
    await page.getByLabel('Username').fill(USER);
    await page.getByLabel('Password').fill(`${PASS}-wrong`);
    await shot(page, '01-login.png');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error', { hasText: 'Login failed' }).waitFor();
  });

  await step('login', async () => {
    await page.getByLabel('Password').fill(PASS);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.locator('#who-name', { hasText: USER }).waitFor();
  });

  await step('create an administrator user on the admin page', async () => {
    await openSection(page, 'Admin', 'Users');
    await page.getByText('Add a user', { exact: true }).click();
    const form = page.getByRole('form', { name: 'Add a user' });
    await form.getByLabel('Username').fill(names.user);
    await form.getByLabel('Password', { exact: true }).fill('ui-test-secret');
    await form.getByLabel('Confirm password').fill('ui-test-secret');
    await form.getByRole('button', { name: 'administrator' }).click();
    if ((await form.getByLabel('Tags').inputValue()) !== 'administrator') throw new Error('the administrator button did not fill the tags field');
    await form.getByRole('button', { name: 'Add user' }).click();
    const row = page.locator('tbody tr', { has: page.getByRole('link', { name: names.user, exact: true }) });
    await row.locator('.badge', { hasText: 'administrator' }).waitFor();
    const created = await apiCall('GET', `/users/${enc(names.user)}`);
    const tags = Array.isArray(created.tags) ? created.tags : String(created.tags).split(',');
    if (!tags.includes('administrator')) throw new Error(`user tags are ${JSON.stringify(created.tags)}`);
    await shot(page, '02-admin-users.png');
  });

  await step('create a queue', async () => {
    await openSection(page, 'Queues', 'Queues');
    await page.getByText('Add a new queue', { exact: true }).click();
    const form = page.getByRole('form', { name: 'Add queue' });
    await form.getByLabel('Virtual host').selectOption('/');
    await form.getByLabel('Name', { exact: true }).fill(names.queue);
    await form.getByRole('button', { name: 'Add queue' }).click();
    await page.getByLabel('Filter by name').fill(names.queue);
    await page.getByRole('link', { name: names.queue, exact: true }).waitFor();
    await tableReady(page);
    await shot(page, '03-queues.png');
  });

  await step('publish a message from the queue page', async () => {
    await page.getByRole('link', { name: names.queue, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: names.queue }).waitFor();
    const form = page.getByRole('form', { name: 'Publish message' });
    await form.getByLabel('Payload', { exact: true }).fill(names.payload);
    await form.getByRole('button', { name: 'Publish message' }).click();
    await form.locator('output[data-routed="true"]').waitFor();
  });

  await step('get the message back on the queue page', async () => {
    const form = page.getByRole('form', { name: 'Get messages' });
    await form.getByLabel('Ack mode').selectOption('ack_requeue_true');
    await form.getByRole('button', { name: 'Get messages' }).click();
    await page.locator('.message .payload', { hasText: names.payload }).waitFor();
    await shot(page, '04-queue.png');
  });

  if (isRabbit) {
    skip('move messages to another queue', `${product} has no move endpoint`);
    await step('move messages shows the server\'s refusal (RabbitMQ)', async () => {
      const form = page.getByRole('form', { name: 'Move messages' });
      await form.getByLabel('Destination queue').fill(names.dest);
      await form.getByRole('button', { name: 'Move messages' }).click();
      await page.locator('.notice.error', { hasText: 'Warren extension' }).waitFor();
    });
  } else {
    await step('move messages to another queue', async () => {
      await apiCall('PUT', `/queues/%2F/${enc(names.dest)}`, { durable: true, auto_delete: false, arguments: {} });
      const form = page.getByRole('form', { name: 'Move messages' });
      await form.getByLabel('Destination queue').fill(names.dest);
      await form.getByRole('button', { name: 'Move messages' }).click();
      await form.locator('output', { hasText: 'Moved 1 message' }).waitFor();
      const deadline = Date.now() + STEP_MS;
      let dest;
      do {
        dest = await apiCall('GET', `/queues/%2F/${enc(names.dest)}`);
        if (dest.messages === 1) break;
        await new Promise((r) => setTimeout(r, 500));
      } while (Date.now() < deadline);
      if (dest.messages !== 1) throw new Error(`destination queue has ${dest.messages} messages, expected 1`);
    });
  }

  await step('delete the queue from its page', async () => {
    await page.getByRole('button', { name: 'Delete queue' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete queue' }).click();
    await page.getByRole('heading', { level: 1, name: 'Queues', exact: true }).waitFor();
    await page.locator('.notice.success', { hasText: 'deleted' }).waitFor();
    const res = await fetch(`${BASE}/api/queues/%2F/${enc(names.queue)}`, { headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}` } });
    if (res.status !== 404) throw new Error(`queue still exists (HTTP ${res.status})`);
  });

  await step('overview charts draw at least two samples, live', async () => {
    await openSection(page, 'Overview', 'Overview');
    const samples = () => page.evaluate(() => Number(document.getElementById('chart-rates')?.dataset.samples || 0));
    await page.waitForFunction(() => Number(document.getElementById('chart-rates')?.dataset.samples) >= 1);
    const target = Math.max(2, (await samples()) + 1); // at least one new poll while we watch
    await page.waitForFunction((n) => ['chart-rates', 'chart-queued']
      .every((id) => Number(document.getElementById(id)?.dataset.samples) >= n), target, { timeout: STEP_MS });
    const summary = await page.locator('#chart-rates .sr-only').textContent();
    if (!/Latest: Publish/.test(summary)) throw new Error(`chart text alternative is "${summary}"`);
    await shot(page, '05-overview.png');
  });

  for (const [label, file] of [['Exchanges', '06-exchanges.png'], ['Connections', '07-connections.png'], ['Channels', '08-channels.png']]) {
    await step(`${label.toLowerCase()} page`, async () => {
      await openSection(page, label, label);
      await tableReady(page);
      await shot(page, file);
    });
  }

  await step('exchange page', async () => {
    await page.goto(`${BASE}/#/exchanges/%2F/amq.direct`);
    await page.getByRole('heading', { level: 1, name: 'amq.direct' }).waitFor();
    await page.getByRole('form', { name: 'Publish message' }).waitFor();
    await shot(page, '09-exchange.png');
  });

  await step('virtual hosts page', async () => {
    await openSection(page, 'Admin', 'Users');
    await page.getByRole('navigation', { name: 'Admin' }).getByRole('link', { name: 'Virtual hosts' }).click();
    await page.getByRole('heading', { level: 1, name: 'Virtual hosts' }).waitFor();
    await page.locator('.table-wrap[data-rows]').waitFor();
    await shot(page, '10-vhosts.png');
  });

  await step('log out', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    if (await page.evaluate(() => sessionStorage.length) !== 0) throw new Error('credentials left in sessionStorage');
  });
}

async function cleanup() {
  for (const p of [`/users/${enc(names.user)}`, `/queues/%2F/${enc(names.queue)}`, `/queues/%2F/${enc(names.dest)}`]) {
    await apiCall('DELETE', p).catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.log(`not ok - the whole test took more than ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

let context = null;
const profile = mkdtempSync(path.join(tmpdir(), 'warren-ui-'));
try {
  mkdirSync(SHOTS, { recursive: true });
  let product = '';
  await step(`server answers at ${BASE}`, async () => {
    const overview = await apiCall('GET', '/overview');
    product = `${overview.product_name || 'unknown'} ${overview.product_version || ''}`.trim();
    console.log(`# server: ${product}; screenshots in ${SHOTS}`);
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: STEP_MS,
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageProblems.push(`console.error: ${msg.text()}`);
  });
  try {
    await main(page, product);
  } catch {
    await shot(page, 'failure.png').catch(() => {});
  }
} catch (err) {
  if (!results.failed) {
    results.failed += 1;
    console.log(`not ok - setup: ${err.message}`);
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  await cleanup();
  clearTimeout(watchdog);
}
console.log(`ui: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
process.exit(results.failed ? 1 : 0);
