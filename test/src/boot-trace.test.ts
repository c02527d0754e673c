/**
 * `nodes why`'s pure core: dnsmasq 2.90's log lines (captured from real runs, see
 * fixtures/boot-trace/capture.sh) → events tied to a node, and each verdict with its
 * threshold (just before it: in progress; just after: the verdict).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createNode, type Node } from '../../src/contract/node';
import {
  ADDRESS_TO_LOADER_MS,
  CONFIG_TO_KERNEL_MS,
  INSTALLING_TO_INSTALLED_MS,
  KERNEL_TO_PRESEED_MS,
  LOADER_SILENCE_MS,
  PRESEED_TO_INSTALLING_MS,
  parseDnsmasqLog,
  parseDnsmasqMessage,
  parseJournal,
  selectBootTrace,
  selectBootVerdict,
  selectNodeWireEvents,
  selectSyslogTime,
  selectTftpFileRole,
  selectUnknownMacs,
  type WireEvent,
} from '../../src/region/boot-trace';
import { loadBootLogs, renderJournalArgs } from '../../src/region/boot-logs';

const FIXTURES = path.join(__dirname, 'fixtures/boot-trace');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
/** The captures were made on Dec 6 2026 in UTC; syslog stamps are local time, so build them the same way. */
const NOW = new Date(2026, 11, 6, 16, 0, 0);
const local = (h: number, m: number, s: number) => new Date(2026, 11, 6, h, m, s).toISOString();

function node(macs: string[], events: [string, string, string][] = [], ipv4 = ''): Node {
  const n = createNode({ hostname: 'alpha', macs, ipv4 }, new Date(2026, 11, 6, 15, 0, 0), { systemId: 'node-alpha', token: 't'.repeat(32) });
  for (const [at, type, message] of events) n.events.push({ at, type, message });
  return n;
}

t.test('DHCP lines of a full-mode run: offer/ack, no address available, ignored', async (t) => {
  const events = parseDnsmasqLog(fixture('dhcp-full.log'), NOW);
  const short = events.map((e) => [e.mac, e.kind, e.ipv4]);
  t.same(short, [
    ['52:54:00:aa:bb:01', 'discover', ''],
    ['52:54:00:aa:bb:01', 'offer', '10.44.0.42'],
    ['52:54:00:aa:bb:01', 'request', '10.44.0.42'],
    ['52:54:00:aa:bb:01', 'ack', '10.44.0.42'],
    ['52:54:00:aa:bb:02', 'discover', ''],
    ['52:54:00:aa:bb:02', 'offer', '10.44.0.100'],
    ['52:54:00:aa:bb:02', 'request', '10.44.0.100'],
    ['52:54:00:aa:bb:02', 'ack', '10.44.0.100'],
    ['52:54:00:aa:bb:03', 'no-offer', ''],
    ['52:54:00:aa:bb:03', 'no-offer', ''],
    ['52:54:00:aa:bb:03', 'no-offer', ''],
    ['52:54:00:aa:bb:05', 'ignored', ''],
    ['52:54:00:aa:bb:05', 'ignored', ''],
    ['52:54:00:aa:bb:05', 'ignored', ''],
  ]);
  t.equal(events[8]!.detail, 'DHCPDISCOVER(p0) no address available');
  t.equal(events[0]!.source, 'dhcp');
  t.equal(events[0]!.at, local(15, 17, 46), 'a local time stamp, the year from now');
});

t.test('log-dhcp: the vendor class of the transaction goes to its MAC; option dumps are dropped', async (t) => {
  const events = parseDnsmasqLog(fixture('dhcp-log-dhcp.log'), NOW);
  t.notOk(events.some((e) => /sent size|requested options|available DHCP range/.test(e.detail)));
  const info = events.filter((e) => e.kind === 'client-info' && e.mac === '52:54:00:aa:bb:02').map((e) => e.detail);
  t.ok(info.includes('vendor class: PXEClient:Arch:00007:UNDI:003016'));
  t.ok(info.includes('tags: uec, efi64, p0'));
  t.same(events.filter((e) => e.kind === 'ack').map((e) => [e.mac, e.ipv4, e.xid]), [
    ['52:54:00:aa:bb:01', '10.44.0.42', '727359073'],
    ['52:54:00:aa:bb:02', '10.44.0.100', '2316899191'],
  ]);
  t.equal(events.filter((e) => e.kind === 'ignored').length, 3);
});

t.test('proxy mode: the PXE answer', async (t) => {
  const events = parseDnsmasqLog(fixture('dhcp-proxy.log'), NOW);
  t.same(events.map((e) => [e.mac, e.kind, e.detail]), [['52:54:00:aa:bb:02', 'proxy', 'PXE(p0) proxy']]);
});

t.test('TFTP lines: files relative to the root from the start-up line; not found is a failure', async (t) => {
  const events = parseDnsmasqLog(fixture('tftp.log'), NOW);
  t.same(events.map((e) => [e.kind, e.file, e.ipv4]), [
    ['tftp-sent', 'undionly.kpxe', '10.44.0.50'],
    ['tftp-sent', 'images/x/linux', '10.44.0.50'],
    ['tftp-failed', 'nosuch', '10.44.0.50'],
    ['tftp-sent', 'undionly.kpxe', '10.44.0.50'],
  ]);
  t.equal(events[2]!.detail, 'not found');
});

t.test('TFTP transfers the client abandoned (captured: clients killed mid-transfer)', async (t) => {
  const events = parseDnsmasqLog(fixture('tftp-aborted.log'), NOW);
  t.same(events.map((e) => [e.kind, e.file, e.ipv4, e.detail]), [
    ['tftp-failed', 'big.img', '10.44.0.50', 'failed sending'],
    ['tftp-failed', 'big.img', '10.44.0.50', 'failed sending'],
  ]);
  const mac = '52:54:00:aa:bb:01';
  const ack = { at: local(15, 34, 50), source: 'dhcp' as const, kind: 'ack' as const, mac, ipv4: '10.44.0.50', file: '', detail: 'DHCPACK(p0)', xid: '' };
  const verdict = selectBootVerdict(node([mac]), [ack, ...events], NOW);
  t.equal(verdict.code, 'tftp-failed');
  t.match(verdict.summary, /^TFTP failed sending: big\.img/);
  t.match(verdict.hint, /stopped half-way/);
});

t.test('time stamps: a syslog line has no year; rsyslog RFC 3339 and a host name', async (t) => {
  t.equal(selectSyslogTime('Dec', 31, 23, 59, 0, new Date(2027, 0, 1, 0, 5, 0)).getFullYear(), 2026, 'December read in January: last year');
  t.equal(selectSyslogTime('Dec', 6, 15, 0, 0, NOW).getFullYear(), 2026);
  const line = '2026-12-06T15:14:15.123456+00:00 prov1 dnsmasq-dhcp[23992]: DHCPACK(p0) 10.44.0.42 52:54:00:aa:bb:01 alpha';
  t.same(parseDnsmasqLog(line, NOW).map((e) => [e.at, e.kind, e.mac]), [['2026-12-06T15:14:15.123Z', 'ack', '52:54:00:aa:bb:01']]);
  const classic = 'Dec  6 15:14:15 prov1 dnsmasq-dhcp[23992]: DHCPOFFER(p0) 10.44.0.42 52:54:00:aa:bb:01 ';
  t.same(parseDnsmasqLog(classic, NOW).map((e) => e.kind), ['offer']);
  t.same(parseDnsmasqLog('Dec  6 15:14:15 prov1 sshd[1]: DHCPOFFER(p0) 10.44.0.42 52:54:00:aa:bb:01', NOW), [], 'not dnsmasq: skipped');
});

t.test('the journal: MESSAGE as text or bytes, the TFTP unit\'s stderr prefix, time from __REALTIME_TIMESTAMP', async (t) => {
  // journalctl -o json records (fields as systemd.journal-fields(7) documents them); the
  // messages are dnsmasq's lines from the captures above.
  const at = Date.UTC(2026, 11, 6, 15, 14, 15);
  const records = [
    { __REALTIME_TIMESTAMP: String(at * 1000), SYSLOG_IDENTIFIER: 'dnsmasq-dhcp', MESSAGE: 'DHCPACK(p0) 10.44.0.42 52:54:00:aa:bb:01 alpha' },
    { __REALTIME_TIMESTAMP: String((at + 1000) * 1000), SYSLOG_IDENTIFIER: 'dnsmasq', MESSAGE: 'dnsmasq-tftp[23995]: TFTP root is /var/lib/uec-provisioning/boot  ' },
    { __REALTIME_TIMESTAMP: String((at + 2000) * 1000), SYSLOG_IDENTIFIER: 'dnsmasq', MESSAGE: [...Buffer.from('dnsmasq-tftp[23995]: sent /var/lib/uec-provisioning/boot/undionly.kpxe to 10.44.0.42')] },
  ];
  const events = parseJournal(`${records.map((r) => JSON.stringify(r)).join('\n')}\nnot json\n`);
  t.same(events.map((e) => [e.at, e.kind, e.file || e.mac]), [
    ['2026-12-06T15:14:15.000Z', 'ack', '52:54:00:aa:bb:01'],
    ['2026-12-06T15:14:17.000Z', 'tftp-sent', 'undionly.kpxe'],
  ]);
  t.same(renderJournalArgs(new Date(at)), ['-u', 'uec-provisioning-dhcpd', '-u', 'uec-provisioning-tftpd', '-o', 'json', '--no-pager', '--since', `@${at / 1000}`]);
});

t.test('loadBootLogs: the journal, a journal that fails (a warning, nothing else), an unreadable file (one clear error)', async (t) => {
  const since = new Date(NOW.getTime() - 86_400_000);
  const ok = await loadBootLogs({ files: [], since, now: NOW, journal: async () => ({ code: 0, signal: null, stderr: '', stdout: JSON.stringify({ __REALTIME_TIMESTAMP: '1796483655000000', MESSAGE: 'DHCPDISCOVER(p0) 52:54:00:aa:bb:03 no address available' }) }) });
  t.same(ok.events.map((e) => e.kind), ['no-offer']);
  const failing = await loadBootLogs({ files: [], since, now: NOW, journal: async () => ({ code: 1, signal: null, stderr: 'No journal files were found.\n', stdout: '' }) });
  t.same(failing.events, []);
  t.match(failing.warning, /journalctl: No journal files were found\..*--log FILE/);
  const missing = await loadBootLogs({ files: [], since, now: NOW, journal: async () => Promise.reject(Object.assign(new Error('spawn journalctl ENOENT'), { code: 'ENOENT' })) });
  t.match(missing.warning, /ENOENT/);
  await t.rejects(loadBootLogs({ files: ['/nonexistent/dnsmasq.log'], since, now: NOW }), { code: 'USAGE', message: /cannot read the dnsmasq log \/nonexistent\/dnsmasq\.log: ENOENT/ });
  const files = await loadBootLogs({ files: [path.join(FIXTURES, 'dhcp-full.log'), path.join(FIXTURES, 'tftp.log')], since, now: NOW });
  t.equal(files.events.length, 18);
  const later = await loadBootLogs({ files: [path.join(FIXTURES, 'dhcp-full.log')], since: NOW, now: NOW });
  t.same(later.events, [], '--since after the lines: none');
});

t.test('file roles in the boot chain', async (t) => {
  const roles = ['undionly.kpxe', 'ipxe.efi', 'shimx64.efi', 'pxelinux.0', 'pxelinux.cfg/01-52-54-00-aa-bb-01', 'grub/grub.cfg', 'ldlinux.c32', 'images/debian/bookworm/amd64/linux', 'images/debian/bookworm/amd64/initrd.gz', 'README'].map(selectTftpFileRole);
  t.same(roles, ['loader', 'loader', 'loader', 'loader', 'config', 'config', 'config', 'kernel', 'kernel', 'other']);
});

function ev(at: string, fields: Partial<WireEvent> & Pick<WireEvent, 'kind'>): WireEvent {
  return { at, source: fields.kind.startsWith('tftp') ? 'tftp' : 'dhcp', mac: '', ipv4: '', file: '', detail: fields.kind, xid: '', ...fields };
}

t.test('TFTP lines belong to the MAC the address was acknowledged to at the time, the fixed address, or a MAC in the file name', async (t) => {
  const mac = '52:54:00:aa:bb:01';
  const wire = [
    ev(local(15, 0, 0), { kind: 'ack', mac, ipv4: '10.44.0.100' }),
    ev(local(15, 0, 1), { kind: 'tftp-sent', file: 'undionly.kpxe', ipv4: '10.44.0.100' }),
    ev(local(15, 1, 0), { kind: 'ack', mac: '52:54:00:aa:bb:99', ipv4: '10.44.0.100' }),
    ev(local(15, 1, 1), { kind: 'tftp-sent', file: 'ipxe.efi', ipv4: '10.44.0.100' }),
    ev(local(15, 2, 0), { kind: 'tftp-sent', file: 'pxelinux.cfg/01-52-54-00-aa-bb-01', ipv4: '10.9.9.9' }),
    ev(local(15, 3, 0), { kind: 'tftp-sent', file: 'grub/grub.cfg', ipv4: '10.44.0.42' }),
  ];
  t.same(selectNodeWireEvents(node([mac]), wire).map((e) => e.file || e.kind), ['ack', 'undionly.kpxe', 'pxelinux.cfg/01-52-54-00-aa-bb-01'], 'the reused address follows its new owner');
  t.same(selectNodeWireEvents(node([mac], [], '10.44.0.42'), wire).map((e) => e.file || e.kind), ['ack', 'undionly.kpxe', 'pxelinux.cfg/01-52-54-00-aa-bb-01', 'grub/grub.cfg'], 'its fixed address');
  const trace = selectBootTrace(node([mac], [[local(15, 0, 30), 'netboot', 'install boot script served']]), wire);
  t.same(trace.map((e) => e.source), ['dhcp', 'timeline', 'tftp', 'timeline', 'tftp'], 'merged in time order (the wire first at equal times)');
  t.equal(trace[0]!.what, `ack (${mac}, 10.44.0.100)`);
  t.equal(trace[1]!.what, 'created: created with status ready');
  t.equal(trace[2]!.what, 'TFTP tftp-sent undionly.kpxe (10.44.0.100)');
});

t.test('each verdict, just before and just after its threshold', async (t) => {
  const mac = '52:54:00:aa:bb:01';
  const at = (ms: number) => new Date(NOW.getTime() + ms);
  const T0 = NOW.toISOString();
  const deploying: [string, string, string] = [local(15, 50, 0), 'status', 'ready → deploying'];
  const ack = ev(T0, { kind: 'ack', mac, ipv4: '10.44.0.100' });
  const loader = ev(T0, { kind: 'tftp-sent', file: 'undionly.kpxe', ipv4: '10.44.0.100' });
  const code = (n: Node, wire: WireEvent[], now: Date) => selectBootVerdict(n, wire, now).code;

  t.equal(code(node([mac], [deploying]), [], NOW), 'no-dhcp');
  t.match(selectBootVerdict(node([mac], [deploying]), [], NOW).summary, /no DHCP seen from 52:54:00:aa:bb:01 since/);
  const wrongMac = ev(T0, { kind: 'ack', mac: '52:54:00:aa:bb:02', ipv4: '10.44.0.100' });
  t.equal(code(node([mac], [deploying]), [wrongMac], NOW), 'no-dhcp', 'another MAC\'s DHCP is not this node\'s');
  const old = ev(local(15, 40, 0), { kind: 'ack', mac, ipv4: '10.44.0.100' });
  t.equal(code(node([mac], [deploying]), [old], NOW), 'no-dhcp', 'DHCP before the deploy started belongs to an earlier attempt');
  const sameSecond = ev(local(15, 50, 0), { kind: 'proxy', mac });
  t.equal(code(node([mac], [[new Date(Date.parse(local(15, 50, 0)) + 875).toISOString(), 'status', 'ready → deploying']]), [sameSecond], at(ADDRESS_TO_LOADER_MS + 1000)), 'proxy-no-boot', 'a syslog line (whole seconds) from the second the deploy started belongs to it');

  const full = parseDnsmasqLog(fixture('dhcp-full.log'), NOW);
  const noAddress = selectBootVerdict(node(['52:54:00:aa:bb:03']), full, NOW);
  t.equal(noAddress.code, 'dhcp-no-offer');
  t.match(noAddress.summary, /no offer: no address available/);
  t.match(noAddress.hint, /--ipv4/);
  t.equal(code(node(['52:54:00:aa:bb:05']), full, NOW), 'dhcp-ignored');
  t.equal(code(node(['52:54:00:aa:bb:01']), [ev(T0, { kind: 'discover', mac })], NOW), 'dhcp-no-offer', 'a DISCOVER with no answer logged');

  t.equal(code(node([mac], [deploying]), [ack], at(ADDRESS_TO_LOADER_MS)), 'in-progress');
  t.equal(code(node([mac], [deploying]), [ack], at(ADDRESS_TO_LOADER_MS + 1000)), 'no-loader');
  const proxy = ev(T0, { kind: 'proxy', mac });
  t.equal(code(node([mac], [deploying]), [proxy], at(ADDRESS_TO_LOADER_MS + 1000)), 'proxy-no-boot');

  t.equal(code(node([mac], [deploying]), [ack, loader], at(LOADER_SILENCE_MS)), 'in-progress');
  const refused = selectBootVerdict(node([mac], [deploying]), [ack, ev(T0, { kind: 'client-info', mac, detail: 'vendor class: PXEClient:Arch:00007:UNDI:003016' }), loader], at(LOADER_SILENCE_MS + 1000));
  t.equal(refused.code, 'loader-refused');
  t.match(refused.summary, /undionly\.kpxe sent at .*then nothing for 2 min \(its firmware said vendor class: PXEClient:Arch:00007/);
  t.match(refused.hint, /Secure Boot/);
  const again = [1, 2, 3].flatMap((i) => [ev(at(i * 1000).toISOString(), { kind: 'ack', mac, ipv4: '10.44.0.100' }), ev(at(i * 1000 + 500).toISOString(), { kind: 'tftp-sent', file: 'undionly.kpxe', ipv4: '10.44.0.100' })]);
  t.equal(code(node([mac], [deploying]), again, at(5000)), 'loader-refused', 'sent three times: refused at once');

  const notFound = ev(at(1000).toISOString(), { kind: 'tftp-failed', file: 'pxelinux.0', ipv4: '10.44.0.100', detail: 'not found' });
  t.equal(code(node([mac], [deploying]), [ack, notFound], at(2000)), 'tftp-failed');

  const config = ev(at(1000).toISOString(), { kind: 'tftp-sent', file: 'pxelinux.cfg/01-52-54-00-aa-bb-01', ipv4: '10.44.0.100' });
  t.equal(code(node([mac], [deploying]), [ack, loader, config], at(1000 + CONFIG_TO_KERNEL_MS)), 'in-progress');
  t.equal(code(node([mac], [deploying]), [ack, loader, config], at(2000 + CONFIG_TO_KERNEL_MS)), 'no-kernel');

  const kernel = ev(at(2000).toISOString(), { kind: 'tftp-sent', file: 'images/debian/bookworm/amd64/linux', ipv4: '10.44.0.100' });
  t.equal(code(node([mac], [deploying]), [ack, loader, config, kernel], at(2000 + KERNEL_TO_PRESEED_MS)), 'in-progress');
  t.equal(code(node([mac], [deploying]), [ack, loader, config, kernel], at(3000 + KERNEL_TO_PRESEED_MS)), 'no-preseed');
  const netboot: [string, string, string] = [T0, 'netboot', 'install boot script served to 52:54:00:aa:bb:01'];
  t.equal(code(node([mac], [deploying, netboot]), [], at(KERNEL_TO_PRESEED_MS + 1000)), 'no-preseed', 'iPXE: the boot script event');

  const preseed: [string, string, string] = [T0, 'preseed', 'install preseed fetched'];
  t.equal(code(node([mac], [deploying, netboot, preseed]), [ack], at(PRESEED_TO_INSTALLING_MS)), 'in-progress');
  const noInstalling = selectBootVerdict(node([mac], [deploying, netboot, preseed]), [ack], at(PRESEED_TO_INSTALLING_MS + 1000));
  t.equal(noInstalling.code, 'preseed-no-installing');
  t.match(noInstalling.hint, /early_command/);
  const laterDhcp = ev(at(60_000).toISOString(), { kind: 'ack', mac, ipv4: '10.44.0.100' });
  t.equal(code(node([mac], [deploying, netboot, preseed]), [ack, laterDhcp], at(PRESEED_TO_INSTALLING_MS + 1000)), 'preseed-no-installing', 'the installer\'s own DHCP later does not move it back');

  const installing: [string, string, string] = [T0, 'installing', 'installing'];
  t.equal(code(node([mac], [deploying, preseed, installing]), [], at(INSTALLING_TO_INSTALLED_MS)), 'in-progress');
  t.equal(code(node([mac], [deploying, preseed, installing]), [], at(INSTALLING_TO_INSTALLED_MS + 1000)), 'install-stalled');
  t.equal(code(node([mac], [deploying, preseed, installing, [T0, 'installed', 'installed']]), [], at(INSTALLING_TO_INSTALLED_MS * 2)), 'installed');
  t.equal(code(node([mac], [deploying, preseed, installing, [T0, 'failed', 'partman failed']]), [], NOW), 'install-failed');
  const redeploy: [string, string, string] = [at(1000).toISOString(), 'status', 'deployed → deploying'];
  t.equal(code(node([mac], [deploying, preseed, installing, [T0, 'installed', 'installed'], redeploy]), [], at(2000)), 'no-dhcp', 'a new deploy starts a new attempt');
});

t.test('unknown MACs: those no node has, newest first, with the vendor class log-dhcp gave', async (t) => {
  const events = parseDnsmasqLog(fixture('dhcp-log-dhcp.log'), NOW);
  const unknown = selectUnknownMacs(events, [node(['52:54:00:aa:bb:01'])]);
  t.same(unknown.map((u) => [u.mac, u.count, u.vendorClass]), [
    ['52:54:00:aa:bb:05', 3, 'udhcp 1.35.0'],
    ['52:54:00:aa:bb:03', 3, 'udhcp 1.35.0'],
    ['52:54:00:aa:bb:02', 4, 'PXEClient:Arch:00007:UNDI:003016'],
  ]);
  t.match(unknown[0]!.last, /^DHCPDISCOVER\(p0\) ignored \(52:54:00:aa:bb:05\)$/);
  t.same(selectUnknownMacs(events, [node(['52:54:00:aa:bb:01', '52:54:00:aa:bb:02', '52:54:00:aa:bb:03', '52:54:00:AA:BB:05'])]), []);
});

t.test('a line that concerns no client is no event', async (t) => {
  for (const line of ['started, version 2.90 DNS disabled', 'read /tmp/h3cap/hosts.d/alpha', 'DHCP, IP range 10.44.0.100 -- 10.44.0.100, lease time 1h', '727359073 sent size:  4 option: 54 server-identifier  10.44.0.1', 'cannot access /x/../etc/passwd: Permission denied']) {
    t.equal(parseDnsmasqMessage(line, NOW.toISOString()), null, line);
  }
});
