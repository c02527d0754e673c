/** Who is asking (pure): X-Forwarded-* believed only from a trusted proxy (issue 13, item 4). */
import t from 'tap';
import { checkTrustedProxies, normaliseAddress, parseTrustedProxies, selectClient } from '../../../packages/webui/client-address';
import { ADMIN, login, startHarness } from './harness';

const LOOPBACK = ['127.0.0.1', '::1'];

t.test('an untrusted peer: its own address, never Secure, whatever it sends', async (t) => {
  t.same(selectClient('192.0.2.7', { 'x-forwarded-for': '10.0.0.1', 'x-forwarded-proto': 'https' }, LOOPBACK), { address: '192.0.2.7', secure: false });
  t.same(selectClient('127.0.0.1', { 'x-forwarded-for': '10.0.0.1', 'x-forwarded-proto': 'https' }, []), { address: '127.0.0.1', secure: false }, 'no proxy trusted');
});

t.test('a trusted peer: the last X-Forwarded-For hop and X-Forwarded-Proto', async (t) => {
  t.same(selectClient('127.0.0.1', { 'x-forwarded-for': '203.0.113.1, 192.0.2.10', 'x-forwarded-proto': 'https' }, LOOPBACK), { address: '192.0.2.10', secure: true });
  t.same(selectClient('::ffff:127.0.0.1', { 'x-forwarded-for': '192.0.2.10' }, LOOPBACK), { address: '192.0.2.10', secure: false }, 'an IPv4-mapped peer is its IPv4 address');
  t.same(selectClient('::1', { 'x-forwarded-for': '2001:DB8::1' }, LOOPBACK), { address: '2001:db8::1', secure: false });
  t.same(selectClient('127.0.0.1', { 'x-forwarded-for': 'evil, <script>' }, LOOPBACK), { address: '127.0.0.1', secure: false }, 'a hop that is not an address: the peer');
  t.same(selectClient('127.0.0.1', {}, LOOPBACK), { address: '127.0.0.1', secure: false }, 'no header: the proxy itself');
  t.same(selectClient('127.0.0.1', { 'x-forwarded-proto': 'http, https' }, LOOPBACK).secure, true, 'the last proto value, like the last hop');
});

t.test('the trusted_proxies setting: addresses only', async (t) => {
  t.same(parseTrustedProxies('127.0.0.1 ::1, 192.0.2.5'), ['127.0.0.1', '::1', '192.0.2.5']);
  t.same(parseTrustedProxies(''), []);
  t.equal(parseTrustedProxies('127.0.0.1 proxy.example'), null);
  t.equal(checkTrustedProxies('127.0.0.1 ::1'), null);
  t.match(checkTrustedProxies('127.0.0.1 10.0.0.0/8'), /"10\.0\.0\.0\/8" is not an IPv4 or IPv6 address/);
  t.equal(normaliseAddress('::FFFF:10.1.2.3'), '10.1.2.3');
});

t.test('PUT /api/config refuses a trusted_proxies value that is not a list of addresses', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const bad = await c.call('PUT', '/api/config', { 'webui.trusted_proxies': '127.0.0.1 proxy.example' });
  t.equal(bad.status, 400);
  t.match(bad.json.error, /webui\.trusted_proxies.*"proxy\.example" is not an IPv4 or IPv6 address/);
  t.equal((await c.call('PUT', '/api/config', { 'webui.trusted_proxies': '127.0.0.1 192.0.2.5' })).status, 200);
});
