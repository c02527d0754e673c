/**
 * Browser test with Playwright (playwright-core) driving Debian's chromium: log in, add a
 * node, deploy it, and watch its status change live while the test posts the node's status
 * call-backs to the region, which runs as a separate `uec-provisioning serve` process (as on
 * a real server). Screenshots of the main pages go to test/packages/webui/artifacts/.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { chromium } from 'playwright-core';
import { REPO_ROOT } from '../../helpers/scratch';
import { ADMIN, startHarness } from './harness';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');
const CLI = path.join(REPO_ROOT, 'dist/src/cli.js');
const skip = !fs.existsSync(CHROMIUM) ? 'no /usr/bin/chromium' : !fs.existsSync(CLI) ? 'needs npm run build' : false;

t.test('log in, add a node, deploy it, see its progress live', { skip }, async (t) => {
  const h = await startHarness(t);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const region = spawn(process.execPath, [CLI, 'serve', '--root', h.paths.root, '--port', '0', '--listen', '127.0.0.1', '--json', '--no-apply'], {
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: path.join(REPO_ROOT, 'templates') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    region.kill('SIGTERM');
  });
  let regionErr = '';
  region.stderr.on('data', (d: Buffer) => (regionErr += d.toString()));
  const regionPort = await new Promise<number>((resolve, reject) => {
    let out = '';
    region.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    region.on('exit', (code) => reject(new Error(`region exited ${code}: ${regionErr}`)));
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.setDefaultTimeout(20_000);

  await page.goto(`${h.base}/`);
  t.match(page.url(), /\/login$/, 'redirected to the login');
  await page.fill('#user', ADMIN.user);
  await page.fill('#password', ADMIN.password);
  await page.press('#password', 'Enter'); // keyboard only
  await page.waitForURL(`${h.base}/`);
  t.equal(await page.textContent('h1'), 'Dashboard');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  await page.goto(`${h.base}/nodes`);
  await page.fill('#a-host', 'pw1');
  await page.fill('#a-mac', '52:54:00:77:00:01');
  await page.click('text=Add node');
  await page.waitForSelector('#nodes-table >> text=pw1');
  const node = (await h.store.find('pw1'))!;
  t.ok(node, 'the node is in the store');
  await page.screenshot({ path: path.join(ARTIFACTS, 'nodes.png'), fullPage: true });

  await page.goto(`${h.base}/deploy`);
  await page.check(`input[name="nodes"][value="${node.systemId}"]`);
  await page.selectOption('#d-role', 'server');
  await page.click('button:has-text("Deploy")');
  await page.waitForURL(/\/deploy\?watch=/);
  const row = page.locator(`tr[data-node="${node.systemId}"]`);
  t.equal(await row.locator('[data-field="status"]').textContent(), 'deploying');

  const callback = async (event: string) => {
    const r = await fetch(`http://127.0.0.1:${regionPort}/metadata/latest/${node.systemId}/status/${event}?token=${node.token}`, { method: 'POST', body: `${event} from the test` });
    t.equal(r.status, 200, `region accepted ${event}`);
  };
  await callback('installing');
  await row.locator('.stages li.done', { hasText: 'installing' }).waitFor();
  t.pass('installing shown live');
  await callback('installed');
  await row.locator('.stages li.done', { hasText: 'installed' }).waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, 'deploy-progress.png'), fullPage: true });
  await callback('deployed');
  await row.locator('[data-field="status"]', { hasText: 'deployed' }).waitFor();
  t.pass('deployed shown live, without a reload');
  t.match(await page.textContent('#live'), /pw1: deployed/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'deploy-done.png'), fullPage: true });

  await page.goto(`${h.base}/nodes/${node.systemId}`);
  t.match(await page.textContent('.timeline'), /installing from the test/);
  t.notOk((await page.content()).includes(node.token), 'the token is not on the page');
  await page.screenshot({ path: path.join(ARTIFACTS, 'node.png'), fullPage: true });
  for (const name of ['images', 'settings', 'account']) {
    await page.goto(`${h.base}/${name}`);
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  }
  // Narrow screen: nothing overflows the page horizontally.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(`${h.base}/nodes`);
  const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  t.ok((overflow as number) <= 1, 'no horizontal page scroll at 360 px');
  await page.screenshot({ path: path.join(ARTIFACTS, 'nodes-narrow.png'), fullPage: true });
});
