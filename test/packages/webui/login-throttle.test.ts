/**
 * Issue 13, items 3 and 4: a stranger's failed logins never lock the admin out, and the
 * client address (and the cookie's Secure flag) come from X-Forwarded-* only when a trusted
 * proxy sends them.
 */
import t from 'tap';
import { createLoginThrottle, selectBackoffMs, throttleLimits } from '../../../packages/webui/sessions';
import { ADMIN, VIEWER, startHarness, type Harness } from './harness';

t.test('backoff (pure): free attempts, then 1 s, 2 s, 4 s … capped at 5 minutes', async (t) => {
  const limits = throttleLimits(5);
  t.same([0, 1, 4, 5, 6, 7, 8, 13, 14, 40].map((f) => selectBackoffMs(f, limits)), [0, 0, 0, 1000, 2000, 4000, 8000, 256_000, 300_000, 300_000]);
  t.equal(limits.addressFailures, 20, 'an address may fail 4 × login_attempts times across accounts');
});

t.test('throttle: per (account, address) with backoff; per address across accounts; forgotten after 15 minutes', async (t) => {
  let now = 1_000_000;
  const throttle = createLoginThrottle(throttleLimits(5), () => now);
  for (let i = 0; i < 4; i++) throttle.fail('admin', 'X');
  t.equal(throttle.retryAfter('admin', 'X'), 0, '4 failures cost nothing');
  throttle.fail('admin', 'X');
  t.equal(throttle.retryAfter('admin', 'X'), 1, 'the 5th: wait 1 s');
  t.equal(throttle.retryAfter('admin', 'Y'), 0, 'the admin from another address is not delayed');
  t.equal(throttle.retryAfter('viewer', 'X'), 0, 'another account from X is not delayed');
  now += 1000;
  t.equal(throttle.retryAfter('admin', 'X'), 0, 'after 1 s X may try again');
  throttle.fail('admin', 'X');
  t.equal(throttle.retryAfter('admin', 'X'), 2, 'the 6th: 2 s');
  now += 2000;
  throttle.fail('admin', 'X');
  t.equal(throttle.retryAfter('admin', 'X'), 4, 'the 7th: 4 s');
  throttle.succeed('admin', 'Y');
  t.equal(throttle.retryAfter('admin', 'X'), 4, "a success from Y does not clear X's record");
  throttle.succeed('admin', 'X');
  t.equal(throttle.retryAfter('admin', 'X'), 0, "a success clears the pair's record");
  for (let i = 0; i < 12; i++) throttle.fail(`user${i}`, 'X'); // 7 for admin + 12 = 19
  t.equal(throttle.retryAfter('nobody', 'X'), 0, '19 failures from X within 15 minutes: not yet');
  throttle.fail('user12', 'X');
  const wait = throttle.retryAfter('viewer', 'X');
  t.ok(wait > 800 && wait <= 900, `20 failures from X: X waits until the oldest is 15 minutes old (${wait} s)`);
  t.equal(throttle.retryAfter('admin', 'Y'), 0, 'spraying from X never touches Y');
  now += 15 * 60_000;
  t.equal(throttle.retryAfter('viewer', 'X'), 0, 'after 15 minutes X is free again');
  for (let i = 0; i < 6; i++) throttle.fail('admin', 'Z');
  now += 15 * 60_000;
  throttle.fail('admin', 'Z');
  t.equal(throttle.retryAfter('admin', 'Z'), 0, 'a pair record is forgotten 15 minutes after its last failure');
});

function attempt(h: Harness, who: { user: string; password: string }, headers: Record<string, string> = {}) {
  return fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(who) });
}

const STRANGER = { 'X-Forwarded-For': '198.51.100.66' };
const ADMIN_DESK = { 'X-Forwarded-For': '192.0.2.10' };

t.test('behind the proxy: a stranger failing as admin does not lock the admin out', async (t) => {
  const clock = Date.now();
  // The test talks to the service from 127.0.0.1, as apache2's drop-in does (trusted by default).
  const h = await startHarness(t, process.env, { now: () => clock });
  for (let i = 0; i < 5; i++) t.equal((await attempt(h, { user: 'admin', password: 'guess' }, STRANGER)).status, 401, `stranger's guess ${i + 1} → 401`);
  const refused = await attempt(h, ADMIN, STRANGER);
  t.equal(refused.status, 429, "the stranger's address is throttled for admin");
  const admin = await attempt(h, ADMIN, ADMIN_DESK);
  t.equal(admin.status, 200, 'the admin logs in from their own address at once');
  t.ok(h.logs.some((l) => /failed login for "admin" from 198\.51\.100\.66/.test(l)), 'the log names the real client, not the proxy');
  t.ok(h.logs.some((l) => /admin logged in from 192\.0\.2\.10/.test(l)));
});

t.test('behind the proxy: password spraying from one address locks only that address', async (t) => {
  const clock = Date.now();
  const h = await startHarness(t, process.env, { now: () => clock });
  for (let i = 0; i < 20; i++) t.equal((await attempt(h, { user: `user${i}`, password: 'guess' }, STRANGER)).status, 401);
  t.equal((await attempt(h, VIEWER, STRANGER)).status, 429, 'after 20 failures across accounts the address is refused');
  t.equal((await attempt(h, VIEWER, ADMIN_DESK)).status, 200, 'another address is not');
  t.equal((await attempt(h, ADMIN, ADMIN_DESK)).status, 200);
});

t.test('only the last X-Forwarded-For hop counts (the one the proxy added)', async (t) => {
  const clock = Date.now();
  const h = await startHarness(t, process.env, { now: () => clock });
  for (let i = 0; i < 5; i++) await attempt(h, { user: 'admin', password: 'guess' }, { 'X-Forwarded-For': `203.0.113.${i}, 198.51.100.66` });
  t.equal((await attempt(h, ADMIN, { 'X-Forwarded-For': '203.0.113.99, 198.51.100.66' })).status, 429, 'a forged first hop does not make a new address');
});

t.test('a client talking to the service directly cannot choose its address or the Secure flag', async (t) => {
  const clock = Date.now();
  // 127.0.0.1 is not a trusted proxy here: the test is a client that reached the port itself.
  const h = await startHarness(t, process.env, { now: () => clock, settings: [['webui.trusted_proxies', '192.0.2.250']] });
  for (let i = 0; i < 5; i++) await attempt(h, { user: 'admin', password: 'guess' }, { 'X-Forwarded-For': `203.0.113.${i}` });
  t.equal((await attempt(h, ADMIN, ADMIN_DESK)).status, 429, 'X-Forwarded-For does not move it to another address');
  t.ok(h.logs.some((l) => /failed login for "admin" from 127\.0\.0\.1/.test(l)), 'the log names the socket peer');
  t.notOk(h.logs.some((l) => /from 203\.0\.113\./.test(l)), 'never the forged address');
  const viewer = await attempt(h, VIEWER, { 'X-Forwarded-Proto': 'https' });
  t.equal(viewer.status, 200);
  t.notMatch(viewer.headers.get('set-cookie') ?? '', /Secure/, 'X-Forwarded-Proto from a direct client does not set Secure');
});

t.test('behind the proxy: the cookie is Secure when the proxy says https, not otherwise', async (t) => {
  const h = await startHarness(t);
  const https = await attempt(h, ADMIN, { ...ADMIN_DESK, 'X-Forwarded-Proto': 'https' });
  t.match(https.headers.get('set-cookie') ?? '', /; Secure/);
  const plain = await attempt(h, ADMIN, { ...ADMIN_DESK, 'X-Forwarded-Proto': 'http' });
  t.notMatch(plain.headers.get('set-cookie') ?? '', /Secure/);
  const form = await fetch(`${h.base}/login`, { method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Forwarded-Proto': 'https' }, body: 'user=admin&password=admin-password-1' });
  t.equal(form.status, 303);
  t.match(form.headers.get('set-cookie') ?? '', /; Secure/, 'the login form too');
});
