/**
 * /metrics of `uec-provisioning serve` (src/core/metrics.ts), scraped in-process: checked by
 * Debian's promtool, who may read it (loopback, or the provisioning key), and that the
 * numbers move with what happens (a request, a deploy to deployed, the node store, dnsmasq
 * over D-Bus, the TFTP dnsmasq's journal, the mirror's state file).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { DHCPD_BUS_NAME, parseMirrorState, readDnsmasqMetrics } from '../../src/core/metrics';
import { selectStatusCounts } from '../../src/contract/node';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { addNode, deployNode, recordStatusEvent } from '../../src/region/node-ops';
import { watchTftpTransfers } from '../../src/region/tftp-transfers';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { loadRoles } from '../../src/contract/roles';
import { startService } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import { startDbusDaemon, stopChild, useSystemBusAddress, waitFor } from '../helpers/dbus-daemon';
import { checkWithPromtool, metricNames, sampleValue } from '../helpers/metrics';
import { createFakeJournal } from '../helpers/fake-journal';
import { createFakeLan, memoryLog } from '../helpers/region-fixture';
import { put, scratchRoot, REPO_ROOT } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');
const KEY_FILE = '/var/lib/uec-provisioning/secrets/provisioning.key';
const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

async function start(t: Test, paths: Paths) {
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  const lan = createFakeLan();
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', addressing: lan.addressing });
  t.teardown(() => running.close());
  const base = `http://127.0.0.1:${running.port}`;
  const scrape = async () => {
    const res = await fetch(`${base}/metrics`);
    if (res.status !== 200) throw new Error(`scrape: ${res.status}`);
    return res.text();
  };
  return { running, store, lines, lan, base, scrape, key: () => fs.readFileSync(paths.resolve(KEY_FILE), 'utf8').trim() };
}

/** No dnsmasq on the bus this test talks to: a socket path nobody listens on. */
function noBus(t: Test): void {
  t.teardown(useSystemBusAddress(`unix:path=${path.join(fs.mkdtempSync('/tmp/uec-nobus-'), 'none.sock')}`));
}

t.test('the scrape passes promtool check metrics; loopback reads it, others need the provisioning key', async (t) => {
  noBus(t);
  const paths = scratchRoot(t);
  const { base, lan, scrape, key } = await start(t, paths);
  const text = await scrape();
  const checked = checkWithPromtool(text);
  t.equal(checked.status, 0, `promtool check metrics: ${checked.output || 'clean'}`);
  t.equal(checked.output, '', 'no lint problems');
  const res = await fetch(`${base}/metrics`);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const from = lan.from('10.0.0.66');
  t.equal((await fetch(`${base}/metrics`, from)).status, 401, 'another machine without the key → 401');
  t.equal((await fetch(`${base}/metrics`, lan.from('10.0.0.66', { Authorization: 'Bearer wrong-key-wrong-key-wrong' }))).status, 403, 'a wrong key → 403');
  t.equal((await fetch(`${base}/metrics`, lan.from('10.0.0.66', { Authorization: `Bearer ${key()}` }))).status, 200, 'with the provisioning key → 200');
  t.equal(sampleValue(text, 'uecp_dnsmasq_up'), 0, 'dnsmasq not reachable: uecp_dnsmasq_up 0');
  t.equal(sampleValue(text, 'uecp_dnsmasq_dhcp_messages_total', { dnsmasq: 'dhcpd', type: 'offer' }), undefined, '… and its counters are absent, the scrape still succeeds');
  t.equal(sampleValue(text, 'uecp_mirror_last_sync_success'), undefined, 'no mirror state: no mirror metrics');
  t.equal(sampleValue(text, 'uecp_dnsmasq_leases_allocated_total'), undefined, 'no lease counter either');
  // serve registers the TFTP reader: the journal (here without any tftpd unit) was read.
  const journalctl = ['/usr/bin/journalctl', '/bin/journalctl'].some((f) => fs.existsSync(f));
  t.equal(sampleValue(text, 'uecp_tftp_log_up'), journalctl ? 1 : 0, `serve reads the tftpd journal for its TFTP counters (journalctl ${journalctl ? 'installed' : 'missing'})`);
});

t.test('a request increments its route/status counter (the route pattern, never the raw path)', async (t) => {
  noBus(t);
  const paths = scratchRoot(t);
  const { base, scrape, lan } = await start(t, paths);
  const before = await scrape();
  const label = { service: 'provisioning', route: '/preseed/<id>', method: 'GET', status: '404' };
  const unmatched = { service: 'provisioning', route: 'unmatched', method: 'GET', status: '404' };
  const was = sampleValue(before, 'uecp_http_requests_total', label) ?? 0;
  const wasUnmatched = sampleValue(before, 'uecp_http_requests_total', unmatched) ?? 0;
  t.equal((await fetch(`${base}/preseed/no-such-node-1`, lan.from('10.0.0.5'))).status, 404);
  t.equal((await fetch(`${base}/preseed/no-such-node-2`, lan.from('10.0.0.5'))).status, 404);
  t.equal((await fetch(`${base}/nowhere/${'x'.repeat(20)}`)).status, 404);
  const after = await scrape();
  t.equal(sampleValue(after, 'uecp_http_requests_total', label), was + 2, 'two preseed 404s, one series');
  t.equal(sampleValue(after, 'uecp_http_requests_total', unmatched), wasUnmatched + 1, 'a path no route matches is "unmatched"');
  t.notOk(after.includes('no-such-node') || after.includes('xxxxxxxx'), 'no raw path in any label');
});

t.test('deploy → deployed moves the counters and the duration histogram; nodes by status match the store', async (t) => {
  noBus(t);
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[provisioning]\ncontext_cache_seconds = 0\n');
  const { base, scrape, lan, store } = await start(t, paths);
  lan.neighbour('10.0.0.11', '52:54:00:00:00:11');
  const from = lan.from('10.0.0.11');
  const before = await scrape();
  const started = sampleValue(before, 'uecp_deploys_started_total') ?? 0;
  const finished = sampleValue(before, 'uecp_deploys_finished_total') ?? 0;
  const durations = sampleValue(before, 'uecp_deploy_duration_seconds_count', { outcome: 'deployed' }) ?? 0;
  const callbackRoute = { route: '/metadata/latest/<id>/status/<event>', status: '200' };
  const callbacks = sampleValue(before, 'uecp_callback_duration_seconds_count', callbackRoute) ?? 0;
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:11'] });
  await addNode(store, { hostname: 'web2', macs: ['52:54:00:00:00:12'] });
  const node = await deployNode(store, 'web1', await loadRoles(paths));
  const middle = await scrape();
  t.equal(sampleValue(middle, 'uecp_deploys_started_total'), started + 1, 'deploy started');
  t.equal(sampleValue(middle, 'uecp_nodes', { status: 'deploying' }), 1);
  t.equal(sampleValue(middle, 'uecp_nodes', { status: 'ready' }), 1);
  t.equal(sampleValue(middle, 'uecp_nodes', { status: 'failed' }), 0, 'every status is present, zeros included');
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/status/installing?token=${node.token}`, from)).status, 200);
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/status/deployed?token=${node.token}`, from)).status, 200);
  const after = await scrape();
  t.equal(sampleValue(after, 'uecp_deploys_finished_total'), finished + 1, 'deploy finished');
  t.equal(sampleValue(after, 'uecp_deploy_duration_seconds_count', { outcome: 'deployed' }), durations + 1, 'one more duration observed');
  t.equal(sampleValue(after, 'uecp_callback_duration_seconds_count', callbackRoute), callbacks + 2, 'both call-backs timed');
  const counts = selectStatusCounts(await store.list());
  for (const [status, n] of Object.entries(counts)) t.equal(sampleValue(after, 'uecp_nodes', { status }), n, `uecp_nodes{status="${status}"} is the store's count`);
  t.equal(counts.deployed, 1);
  // A second deployed report changes nothing (the node is already deployed).
  await recordStatusEvent(store, node.systemId, 'deployed', 'again');
  t.equal(sampleValue(await scrape(), 'uecp_deploys_finished_total'), finished + 1, 'a repeated deployed report is not a second deploy');
});

t.test('a deploy the installer reports failed: failed{cause="reported"} and a failed duration', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const { renderMetrics } = await import('../../src/core/metrics');
  const read = async () => (await renderMetrics()).body;
  noBus(t);
  const before = await read();
  const failed = sampleValue(before, 'uecp_deploys_failed_total', { cause: 'reported' }) ?? 0;
  const durations = sampleValue(before, 'uecp_deploy_duration_seconds_count', { outcome: 'failed' }) ?? 0;
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:21'] });
  const { loadRoles: load } = await import('../../src/contract/roles');
  const roles = await load(paths, path.join(REPO_ROOT, 'templates/roles'));
  const t0 = new Date('2026-01-01T10:00:00Z');
  const node = await deployNode(store, 'web1', roles, {}, { now: () => t0 });
  await recordStatusEvent(store, node.systemId, 'failed', 'partman failed', { now: () => new Date('2026-01-01T10:05:00Z') });
  const after = await read();
  t.equal(sampleValue(after, 'uecp_deploys_failed_total', { cause: 'reported' }), failed + 1);
  t.equal(sampleValue(after, 'uecp_deploy_duration_seconds_count', { outcome: 'failed' }), durations + 1);
  const le300 = sampleValue(before, 'uecp_deploy_duration_seconds_bucket', { outcome: 'failed', le: '300' }) ?? 0;
  t.equal(sampleValue(after, 'uecp_deploy_duration_seconds_bucket', { outcome: 'failed', le: '300' }), le300 + 1, '5 minutes falls in le="300"');
});

t.test('dnsmasq with enable-dbus on a private bus: uecp_dnsmasq_up 1 and its DHCP counters', async (t) => {
  const template = fs.readFileSync(path.join(REPO_ROOT, 'templates/dhcpd/dnsmasq-dhcpd.conf.mustache'), 'utf8');
  t.match(template, new RegExp(`^enable-dbus=${DHCPD_BUS_NAME.replace(/\./g, '\\.')}$`, 'm'), 'the DHCP instance enables D-Bus under the name the metrics read');
  const policy = fs.readFileSync(path.join(REPO_ROOT, 'debian/dbus/uec-provisioning-dhcpd.conf'), 'utf8');
  t.match(policy, `<allow own="${DHCPD_BUS_NAME}"/>`, 'the shipped D-Bus policy lets dnsmasq own that name');
  t.match(policy, `<allow send_destination="${DHCPD_BUS_NAME}"/>`, '… and root ask it');
  const bus = await startDbusDaemon();
  t.teardown(() => bus.stop());
  t.teardown(useSystemBusAddress(bus.address));
  // Its own network namespace (no DHCP range anyway): nothing reaches a real network.
  const dir = fs.mkdtempSync('/tmp/uec-dnsmasq-dbus-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const child = spawn('unshare', ['--net', '/usr/sbin/dnsmasq', '--keep-in-foreground', '--port=0', '--conf-file=/dev/null', `--pid-file=${dir}/pid`, `--enable-dbus=${DHCPD_BUS_NAME}`], {
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address },
    stdio: 'ignore',
  });
  t.teardown(() => stopChild(child));
  const values = await waitFor('dnsmasq on the bus', () => readDnsmasqMetrics(DHCPD_BUS_NAME, 500).catch(() => undefined), 10_000, 100);
  t.equal(values.get('dhcp_offer'), 0, 'GetMetrics read: no offers yet');
  const { renderMetrics } = await import('../../src/core/metrics');
  const { useMetricsSources } = await import('../../src/core/metrics');
  useMetricsSources({ dnsmasqBusName: DHCPD_BUS_NAME });
  const text = (await renderMetrics()).body;
  t.equal(sampleValue(text, 'uecp_dnsmasq_up'), 1);
  for (const type of ['discover', 'offer', 'request', 'ack', 'nak', 'pxe']) t.equal(sampleValue(text, 'uecp_dnsmasq_dhcp_messages_total', { type }), 0, `dhcp ${type} counter present`);
  t.equal(sampleValue(text, 'uecp_dnsmasq_leases_allocated_total'), 0);
  const checked = checkWithPromtool(text);
  t.equal(checked.status, 0, `promtool: ${checked.output || 'clean'}`);
  await stopChild(child);
  t.equal(sampleValue((await renderMetrics()).body, 'uecp_dnsmasq_up'), 0, 'dnsmasq gone: up 0, the scrape still answers');
});

t.test('the shipped D-Bus policy on a bus that denies by default: dnsmasq may own the name, root may read its metrics', async (t) => {
  const dir = fs.mkdtempSync('/tmp/uec-dbus-policy-');
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'bus.sock');
  // The default policy of Debian's /usr/share/dbus-1/system.conf: nobody may own a name or call a method unless a policy allows it.
  fs.writeFileSync(
    path.join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>${path.join(REPO_ROOT, 'debian/dbus/uec-provisioning-dhcpd.conf')}</include>
</busconfig>
`,
  );
  const daemon = spawn('/usr/bin/dbus-daemon', [`--config-file=${path.join(dir, 'bus.conf')}`, '--nofork'], { stdio: 'ignore' });
  t.teardown(() => stopChild(daemon));
  await waitFor('the bus socket', () => fs.existsSync(socket));
  const address = `unix:path=${socket}`;
  t.teardown(useSystemBusAddress(address));
  const child = spawn('unshare', ['--net', '/usr/sbin/dnsmasq', '--keep-in-foreground', '--port=0', '--conf-file=/dev/null', `--pid-file=${dir}/pid`, `--enable-dbus=${DHCPD_BUS_NAME}`], {
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    stdio: 'ignore',
  });
  t.teardown(() => stopChild(child));
  const values = await waitFor('dnsmasq on the bus', () => readDnsmasqMetrics(DHCPD_BUS_NAME, 500).catch(() => undefined), 10_000, 100);
  t.ok(values.has('dhcp_ack'), 'root read GetMetrics from the dnsmasq that owns the name under the policy');
  // dnsmasq's default name is not ours: the policy does not let it be owned here.
  const other = spawn('unshare', ['--net', '/usr/sbin/dnsmasq', '--keep-in-foreground', '--port=0', '--conf-file=/dev/null', `--pid-file=${dir}/pid2`, '--enable-dbus'], {
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    stdio: 'ignore',
  });
  t.teardown(() => stopChild(other));
  await new Promise((r) => setTimeout(r, 500));
  await t.rejects(readDnsmasqMetrics('uk.org.thekelleys.dnsmasq', 500), 'a name the policy does not grant is not served');
});

t.test("the mirror's state file: last result, when, and the served tree's time", async (t) => {
  t.same(parseMirrorState('{"result":"ok","finished":"2026-12-06T09:30:00.000Z","generation":"20261206T092000123Z"}'), { mode: 'mirror', success: true, finished: Date.parse('2026-12-06T09:30:00Z') / 1000, served: Date.parse('2026-12-06T09:20:00.123Z') / 1000 });
  t.same(parseMirrorState('{"result":"failed","finished":"2026-12-06T09:30:00.000Z","generation":null}'), { mode: 'mirror', success: false, finished: Date.parse('2026-12-06T09:30:00Z') / 1000 });
  t.equal(parseMirrorState('not json'), null);
  t.equal(parseMirrorState('{"result":"maybe"}'), null);
  noBus(t);
  const paths = scratchRoot(t);
  put(paths, '/var/lib/uec-provisioning/mirror/state.json', '{"result":"failed","finished":"2026-12-06T09:30:00.000Z","generation":"20261205T010000000Z"}\n');
  const { scrape } = await start(t, paths);
  const text = await scrape();
  t.equal(sampleValue(text, 'uecp_mirror_last_sync_success'), 0);
  t.equal(sampleValue(text, 'uecp_mirror_last_sync_timestamp_seconds'), Date.parse('2026-12-06T09:30:00Z') / 1000);
  t.equal(sampleValue(text, 'uecp_mirror_served_tree_timestamp_seconds'), Date.parse('2026-12-05T01:00:00Z') / 1000);
});

t.test("TFTP transfers from the tftpd's journal: each line counted once, by result and kind; a journal that fails: up 0, counts kept, the scrape answers", async (t) => {
  noBus(t);
  const { lastTftpProblem, renderMetrics, useMetricsSources } = await import('../../src/core/metrics');
  t.teardown(() => useMetricsSources({ readTftpTransfers: undefined }));
  const read = async () => (await renderMetrics()).body;
  const count = (text: string, result: string, kind: string) => sampleValue(text, 'uecp_tftp_transfers_total', { result, kind });
  useMetricsSources({ readTftpTransfers: undefined });
  t.equal(sampleValue(await read(), 'uecp_tftp_log_up'), 0, 'no TFTP log registered (the web UI): up 0');
  const journal = createFakeJournal();
  const root = '/var/lib/uec-provisioning/boot';
  useMetricsSources({ readTftpTransfers: watchTftpTransfers({ since: new Date('2026-12-06T15:00:00Z'), journal: journal.read }) });
  const before = await read();
  t.equal(sampleValue(before, 'uecp_tftp_log_up'), 1, 'the journal read: up 1');
  for (const result of ['sent', 'failed', 'not_found', 'aborted']) {
    for (const kind of ['loader', 'config', 'image', 'other']) t.type(count(before, result, kind), 'number', `${result}/${kind} present from the first scrape`);
  }
  for (const line of [
    `sent ${root}/shimx64.efi to 10.66.0.100`,
    `sent ${root}/grubx64.efi to 10.66.0.100`,
    `file ${root}/grub/grub.cfg-0A420064 not found for 10.66.0.100`,
    `sent ${root}/grub/grub.cfg-01-52-54-00-66-00-13 to 10.66.0.100`,
    `sent ${root}/images/debian/bookworm/amd64/linux to 10.66.0.100`,
    `sent ${root}/images/debian/bookworm/amd64/initrd.gz to 10.66.0.100`,
    `failed sending ${root}/images/debian/bookworm/amd64/initrd.gz to 10.66.0.101`,
    'error 8 User aborted the transfer received from 10.66.0.102',
  ]) {
    journal.log(`dnsmasq-tftp[4242]: ${line}`);
  }
  const after = await read();
  const delta = (result: string, kind: string) => (count(after, result, kind) ?? NaN) - (count(before, result, kind) ?? NaN);
  t.equal(delta('sent', 'loader'), 2, 'shim and GRUB: 2 loaders sent');
  t.equal(delta('sent', 'config'), 1);
  t.equal(delta('not_found', 'config'), 1);
  t.equal(delta('sent', 'image'), 2, 'kernel and initrd');
  t.equal(delta('failed', 'image'), 1);
  t.equal(delta('aborted', 'other'), 1);
  t.equal(delta('sent', 'other'), 0);
  t.notMatch(after, /10\.66\.0|shimx64|grub\.cfg|initrd/, 'no client address or file name in any label');
  const checked = checkWithPromtool(after);
  t.equal(checked.status, 0, `promtool check metrics: ${checked.output || 'clean'}`);
  t.equal(checked.output, '', 'no lint problems');
  t.equal(count(await read(), 'sent', 'loader'), count(after, 'sent', 'loader'), 'a scrape with nothing new logged adds nothing');

  // Two scrapes at once: one read of the journal, the line counted once.
  journal.log(`dnsmasq-tftp[4242]: sent ${root}/shimx64.efi to 10.66.0.103`);
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  journal.gate = () => held;
  const calls = journal.calls.length;
  const both = Promise.all([read(), read()]);
  await new Promise((resolve) => setImmediate(resolve));
  release();
  const [one, two] = await both;
  journal.gate = undefined;
  t.equal(journal.calls.length, calls + 1, 'one journalctl for both');
  t.equal(count(one, 'sent', 'loader'), (count(after, 'sent', 'loader') ?? NaN) + 1);
  t.equal(count(two, 'sent', 'loader'), (count(after, 'sent', 'loader') ?? NaN) + 1, 'the other scrape saw the same count, not twice the line');

  journal.answer = () => ({ code: 1, signal: null, stdout: '', stderr: 'Failed to open files: Permission denied\n' });
  journal.log(`dnsmasq-tftp[4242]: sent ${root}/shimx64.efi to 10.66.0.104`);
  const failing = await read();
  t.equal(sampleValue(failing, 'uecp_tftp_log_up'), 0, 'journalctl failed: up 0');
  t.equal(count(failing, 'sent', 'loader'), count(one, 'sent', 'loader'), 'the counts are kept, not reset');
  t.match(lastTftpProblem(), /Permission denied/);
  t.equal(checkWithPromtool(failing).status, 0, 'the scrape still passes promtool');
  journal.answer = undefined;
  const back = await read();
  t.equal(sampleValue(back, 'uecp_tftp_log_up'), 1);
  t.equal(count(back, 'sent', 'loader'), (count(one, 'sent', 'loader') ?? NaN) + 1, 'the line logged while it failed is counted once it reads again');
  useMetricsSources({ readTftpTransfers: () => Promise.reject(new Error('spawn journalctl ENOENT')) });
  t.equal(sampleValue(await read(), 'uecp_tftp_log_up'), 0, 'no journalctl at all: up 0, the scrape answers');
  t.match(lastTftpProblem(), /ENOENT/);
});

t.test('edge lag: the age of the last region answer appears once the region has answered', async (t) => {
  noBus(t);
  const paths = scratchRoot(t);
  const { base, scrape } = await start(t, paths);
  t.equal(sampleValue(await scrape(), 'uecp_region_last_answer_age_seconds'), undefined, 'absent before the region has answered');
  t.equal((await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:99`)).status, 200, 'an unknown MAC: the region was asked');
  const age = sampleValue(await scrape(), 'uecp_region_last_answer_age_seconds', { region: 'local' });
  t.ok(age !== undefined && age >= 0, `uecp_region_last_answer_age_seconds ${age}`);
});

t.test('docs: docs/metrics.md names every metric of a scrape; the Grafana dashboard queries only metrics that exist', async (t) => {
  noBus(t);
  const paths = scratchRoot(t);
  put(paths, '/var/lib/uec-provisioning/mirror/state.json', '{"result":"ok","finished":"2026-12-06T09:30:00.000Z","generation":"20261206T092000123Z"}\n');
  const { scrape, base } = await start(t, paths);
  await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:99`);
  const text = await scrape();
  const names = new Set(metricNames(text));
  // Families a scrape always has, plus dnsmasq's (absent here: no dnsmasq on the bus).
  for (const n of ['uecp_dnsmasq_dhcp_messages_total', 'uecp_dnsmasq_leases_allocated_total', 'uecp_dnsmasq_leases_pruned_total']) names.add(n);
  const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs/metrics.md'), 'utf8');
  for (const name of names) t.ok(docs.includes(`\`${name}\``), `docs/metrics.md documents ${name}`);
  const dashboard = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
  t.ok(exprs.length >= 8, `the dashboard has queries (${exprs.length})`);
  const known = new Set([...names].flatMap((n) => [n, `${n}_total`, `${n}_bucket`, `${n}_sum`, `${n}_count`]));
  for (const expr of exprs) {
    const used = [...expr.matchAll(/\b(uecp_[a-z0-9_]+)/g)].map((m) => m[1]!);
    t.ok(used.length > 0, `${expr}: names a uecp_ metric`);
    for (const name of used) t.ok(known.has(name), `${name} (in ${expr}) is in a scrape`);
  }
});
