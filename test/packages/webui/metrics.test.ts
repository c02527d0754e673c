/**
 * The web UI's /uec-provisioning/api/metrics: an admin view (401 without a login, 403 for a
 * viewer), a scrape promtool accepts, and each request counted by its route's pattern.
 */
import t from 'tap';
import { addNode } from '../../../src/region/node-ops';
import { checkWithPromtool, sampleValue } from '../../helpers/metrics';
import { ADMIN, VIEWER, login, startHarness } from './harness';

t.test('web UI metrics: admin only, promtool-clean, requests by route pattern, nodes by status', async (t) => {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  const viewer = await login(h, VIEWER);
  t.equal((await fetch(`${h.base}/api/metrics`)).status, 401, 'no login → 401');
  t.equal((await viewer.call('GET', '/api/metrics')).status, 403, 'a viewer → 403');
  await addNode(h.store, { hostname: 'web1', macs: ['52:54:00:00:00:31'] });
  const before = await admin.call('GET', '/api/metrics');
  t.equal(before.status, 200);
  t.match(before.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const checked = checkWithPromtool(before.text);
  t.equal(checked.status, 0, `promtool check metrics: ${checked.output || 'clean'}`);
  t.equal(checked.output, '', 'no lint problems');
  t.equal(sampleValue(before.text, 'uecp_nodes', { status: 'ready' }), (await h.store.list()).filter((n) => n.status === 'ready').length, 'nodes by status from the store');
  const label = { service: 'webui', route: '/api/nodes/:ref', method: 'GET', status: '200' };
  const was = sampleValue(before.text, 'uecp_http_requests_total', label) ?? 0;
  t.equal((await admin.call('GET', '/api/nodes/web1')).status, 200);
  const after = await admin.call('GET', '/api/metrics');
  t.equal(sampleValue(after.text, 'uecp_http_requests_total', label), was + 1, 'GET /api/nodes/:ref 200 counted once');
  t.notOk(after.text.includes('"web1"') || after.text.includes('/api/nodes/web1'), 'the raw path is never a label');
});
