/**
 * The node page's "Boot diagnosis" panel: the verdict of `nodes why` from the journal (a fake
 * journalctl here, carrying dnsmasq lines captured from a real run), escaped, bounded; and on
 * the real node page of a running web UI.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createNode } from '../../../src/contract/node';
import { addNode, deployNode } from '../../../src/region/node-ops';
import { loadRoles } from '../../../src/contract/roles';
import { BOOT_PANEL_LINES, loadBootPanel, renderBootPanel } from '../../../packages/webui/boot-panel';
import { REPO_ROOT } from '../../helpers/scratch';
import { ADMIN, login, startHarness } from './harness';

const CAPTURE = fs.readFileSync(path.join(REPO_ROOT, 'test/src/fixtures/boot-trace/dhcp-full.log'), 'utf8');
const NOW = new Date(2026, 11, 6, 16, 0, 0);

/** The captured file lines as journalctl -o json records (the time from the line, local time). */
function journalOf(text: string): string {
  return text
    .split('\n')
    .map((line) => /^([A-Z][a-z]{2}) +(\d+) (\d\d):(\d\d):(\d\d) dnsmasq-dhcp\[\d+\]: (.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => JSON.stringify({ __REALTIME_TIMESTAMP: String(new Date(2026, 11, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])).getTime() * 1000), SYSLOG_IDENTIFIER: 'dnsmasq-dhcp', MESSAGE: m[6] }))
    .join('\n');
}

t.test('the panel: the verdict from the journal, the trace, escaped and bounded', async (t) => {
  const node = createNode({ hostname: 'bravo', macs: ['52:54:00:aa:bb:03'] }, new Date(2026, 11, 6, 15, 0, 0), { systemId: 'node-bravo1', token: 't'.repeat(32) });
  let asked: readonly string[] = [];
  const panel = await loadBootPanel(node, NOW, async (args) => {
    asked = args;
    return { code: 0, signal: null, stderr: '', stdout: journalOf(CAPTURE) };
  });
  t.ok(asked.includes('uec-provisioning-dhcpd') && asked.includes('uec-provisioning-tftpd'), 'both units');
  t.equal(panel.verdict.code, 'dhcp-no-offer');
  t.equal(panel.trace.filter((e) => e.source === 'dhcp').length, 3, 'its three DISCOVERs');
  const out = renderBootPanel(panel).value;
  t.match(out, /<p data-verdict="dhcp-no-offer"><strong>dhcp-no-offer<\/strong>: DHCPDISCOVERs seen but no offer: no address available/);
  t.match(out, /DHCPDISCOVER\(p0\) no address available \(52:54:00:aa:bb:03\)/);

  const hostile = renderBootPanel({ verdict: { code: 'no-dhcp', summary: '<b>x</b>', hint: 'h' }, trace: [{ at: 'a', source: 'timeline', what: '<script>alert(1)</script>' }], warning: 'w & <i>' });
  t.notMatch(hostile.value, /<script>|<b>x|<i>/, 'nothing becomes markup');
  t.match(hostile.value, /&lt;script&gt;/);
  t.match(hostile.value, /<p class="error">w &amp; &lt;i&gt;<\/p>/, 'the warning is shown');
  const many = Array.from({ length: BOOT_PANEL_LINES + 5 }, (_, i) => ({ at: `t${String(i).padStart(3, '0')}`, source: 'dhcp' as const, what: `line ${i}` }));
  const bounded = renderBootPanel({ verdict: { code: 'no-dhcp', summary: 's', hint: 'h' }, trace: many, warning: '' }).value;
  t.notMatch(bounded, />line 4</, 'the oldest lines are left out');
  t.match(bounded, />line 44</);
  t.match(bounded, new RegExp(`The newest ${BOOT_PANEL_LINES} of ${BOOT_PANEL_LINES + 5} lines`));

  const failing = await loadBootPanel(node, NOW, async () => ({ code: 1, signal: null, stderr: 'Failed to open journal: Permission denied\n', stdout: '' }));
  t.match(failing.warning, /Permission denied/);
  t.equal(failing.verdict.code, 'no-dhcp', 'judged from the timeline alone');
});

t.test('the node page of a running web UI carries the panel', async (t) => {
  const h = await startHarness(t);
  const roles = await loadRoles(h.paths, path.join(REPO_ROOT, 'templates/roles'));
  const added = await addNode(h.store, { hostname: 'panel1', macs: ['52:54:00:77:88:01'] });
  await deployNode(h.store, added.systemId, roles);
  const c = await login(h, ADMIN);
  const page = await c.call('GET', `/nodes/${added.systemId}`);
  t.equal(page.status, 200);
  t.match(page.text, /<h2 id="h-boot">Boot diagnosis<\/h2>/);
  // No DHCP from this made-up MAC in any journal this machine may have.
  t.match(page.text, /<p data-verdict="no-dhcp"><strong>no-dhcp<\/strong>: no DHCP seen from 52:54:00:77:88:01 since /);
  t.match(page.text, /status: ready → deploying/, 'its timeline in the trace');
});
