/**
 * `npm run bench` (dhcpd part), run as root; everything happens inside throw-away network
 * namespaces (test/helpers/netns.ts), nothing reaches the machine's network.
 * 1. Time from adding a node (`nodes add`, which applies) to dnsmasq having read its
 *    reservation (inotify, no restart) and to a DHCP client in the namespace getting it:
 *    with no other node, and with 1,000 nodes already reserved; and 1,000 nodes at once.
 * 2. DHCP offers per second from the rendered full-mode config under perfdhcp (kea-admin)
 *    at 200, 1000 and 3000 DISCOVER/s for 10 s, with ping_check on and off.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main, type Io } from '../src/cli';
import { createNode } from '../src/contract/node';
import { createFileNodeStore } from '../src/region/node-store';
import { staticNetworkFacts } from '../src/core/network-facts';
import { createPaths } from '../src/core/paths';
import { createTestNetwork, netnsUnavailableReason, type NetnsProcess } from '../test/helpers/netns';
import { DHCPD_PATHS } from '../packages/dhcpd/render';

const REPO = path.resolve(__dirname, '..');
process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO, 'templates');
const FACTS = staticNetworkFacts([{ name: 'prov0', mac: '52:54:00:46:00:01', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.46.0.1', prefix: 16 }], ipv6: [] }], null);
const SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip"\nexit 0\n';

async function cli(root: string, args: string[]): Promise<void> {
  let err = '';
  const io: Io = { stdout: () => undefined, stderr: (s) => (err += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'sysv' } };
  const code = await main(['--root', root, ...args], io, { network: FACTS });
  if (code !== 0) throw new Error(`${args.join(' ')}: exit ${code}: ${err}`);
}

function count(text: string, re: RegExp): number {
  return (text.match(re) ?? []).length;
}

async function until(check: () => boolean, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function run(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) {
    process.stdout.write(`bench-dhcpd skipped: ${why}\n`);
    return;
  }
  const teardowns: (() => unknown)[] = [];
  const host = { teardown: (fn: () => unknown) => teardowns.push(fn) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-dhcpd-'));
  fs.chmodSync(dir, 0o755);
  const rows: string[] = [];
  try {
    const paths = createPaths(dir);
    const net = createTestNetwork(host, { name: 'bench' });
    const srv = await net.ns('srv');
    const cl = await net.ns('cli');
    await net.link({ ns: srv, ifname: 'prov0', cidr: '10.46.0.1/16' }, { ns: cl, ifname: 'c0' });
    const script = path.join(dir, 'udhcpc.sh');
    fs.writeFileSync(script, SCRIPT, { mode: 0o755 });

    const start = async (pingCheck: boolean): Promise<NetnsProcess> => {
      await cli(dir, ['config', 'set', 'dhcp.mode=full', 'dhcp.interface=prov0', 'server.interface=prov0', 'dhcp.dns_servers=10.46.0.1', `dhcp.ping_check=${pingCheck}`]);
      await cli(dir, ['apply', 'dhcpd']);
      const p = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${paths.resolve(DHCPD_PATHS.configFile)}`]);
      await p.waitForOutput(/DHCP, IP range/);
      return p;
    };

    // 1. reservations
    let dnsmasq = await start(false);
    const addOne = async (label: string, mac: string, ip: string) => {
      const reads = count(dnsmasq.stdout() + dnsmasq.stderr(), /read .*hosts\.d\//g);
      const t0 = process.hrtime.bigint();
      await cli(dir, ['nodes', 'add', `n${mac.replace(/:/g, '')}`, '--mac', mac, '--ipv4', ip]);
      const applied = Number(process.hrtime.bigint() - t0) / 1e6;
      await until(() => count(dnsmasq.stdout() + dnsmasq.stderr(), /read .*hosts\.d\//g) > reads);
      const read = Number(process.hrtime.bigint() - t0) / 1e6;
      await net.mac(cl, 'c0', mac);
      const r = await net.exec(cl, ['busybox', 'udhcpc', '-i', 'c0', '-n', '-q', '-R', '-f', '-t', '4', '-T', '1', '-s', script]);
      const leased = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!r.stdout.includes(`BOUND ip=${ip}`)) throw new Error(`${label}: client did not get ${ip}: ${r.stdout}${r.stderr}`);
      rows.push(`| add 1 node, ${label}: nodes add + apply | ${applied.toFixed(1)} ms |`, `| add 1 node, ${label}: until dnsmasq read it (inotify) | ${read.toFixed(1)} ms |`, `| add 1 node, ${label}: until a client got the address | ${leased.toFixed(1)} ms |`);
    };
    await addOne('no other nodes', '52:54:00:46:10:01', '10.46.1.1');
    const store = createFileNodeStore(paths);
    const bulk = async (n: number, offset: number) => {
      const reads = count(dnsmasq.stdout() + dnsmasq.stderr(), /read .*hosts\.d\//g);
      await store.update((nodes) => {
        for (let i = 0; i < n; i++) {
          const k = offset + i;
          const hex = (k >> 8).toString(16).padStart(2, '0') + ':' + (k & 255).toString(16).padStart(2, '0');
          nodes.push(createNode({ hostname: `bulk${k}`, macs: [`52:54:00:47:${hex}`], ipv4: `10.46.${10 + Math.floor(k / 250)}.${(k % 250) + 1}` }, new Date(), { systemId: `node-b${k.toString().padStart(5, '0')}`, token: 'x'.repeat(32) }));
        }
      });
      const t0 = process.hrtime.bigint();
      await cli(dir, ['apply', 'dhcpd']);
      const applied = Number(process.hrtime.bigint() - t0) / 1e6;
      await until(() => count(dnsmasq.stdout() + dnsmasq.stderr(), /read .*hosts\.d\//g) >= reads + n);
      return { applied, read: Number(process.hrtime.bigint() - t0) / 1e6 };
    };
    const many = await bulk(1000, 1);
    rows.push(`| add 1,000 nodes at once: apply (1,000 files) | ${many.applied.toFixed(1)} ms |`, `| add 1,000 nodes at once: until dnsmasq read all | ${many.read.toFixed(1)} ms |`);
    await addOne('1,000 nodes reserved', '52:54:00:46:10:02', '10.46.1.2');
    await dnsmasq.stop();
    fs.rmSync(paths.resolve(DHCPD_PATHS.leaseFile), { force: true });

    // 2. perfdhcp (it needs an address of its own on the client interface)
    await net.addr(cl, 'c0', '10.46.0.2/16');
    for (const pingCheck of [true, false]) {
      dnsmasq = await start(pingCheck);
      for (const rate of [200, 1000, 3000]) {
        const r = await net.exec(cl, ['perfdhcp', '-4', '-l', 'c0', '-r', String(rate), '-p', '10', '-R', '1000000', '-x', 'i'], { timeoutMs: 60000 });
        const text = r.stdout + r.stderr;
        const sent = Number(/sent packets: (\d+)/.exec(text)?.[1] ?? NaN);
        const received = Number(/received packets: (\d+)/.exec(text)?.[1] ?? NaN);
        rows.push(`| perfdhcp ${rate} DISCOVER/s for 10 s, ping_check=${pingCheck} | ${(received / 10).toFixed(0)} offers/s (${sent} sent, ${received} answered) |`);
      }
      await dnsmasq.stop();
      fs.rmSync(paths.resolve(DHCPD_PATHS.leaseFile), { force: true });
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(['', '### dhcpd', '', '| measurement | result |', '|---|---|', ...rows, ''].join('\n'));
}

run().catch((err: unknown) => {
  process.stderr.write(`bench-dhcpd failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
