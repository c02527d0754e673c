import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { buildMagicPacket, directedBroadcast } from '../../../packages/webui/power';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { REPO_ROOT } from '../../helpers/scratch';

t.test('magic packet bytes and directed broadcast (pure)', async (t) => {
  const p = buildMagicPacket('52-54-00-AB-CD-EF');
  t.equal(p.length, 102);
  t.equal(p.subarray(0, 6).toString('hex'), 'ffffffffffff');
  for (let i = 0; i < 16; i++) t.equal(p.subarray(6 + i * 6, 12 + i * 6).toString('hex'), '525400abcdef');
  t.throws(() => buildMagicPacket('nope'), { code: 'INVALID_VALUE' });
  t.equal(directedBroadcast('10.0.0.1', 24), '10.0.0.255');
  t.equal(directedBroadcast('172.16.5.9', 20), '172.16.15.255');
  t.equal(directedBroadcast('127.0.0.1', 8), '127.255.255.255');
  t.equal(directedBroadcast('10.0.0.7', 32), '10.0.0.7');
});

const LISTENER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => console.log('GOT ' + r.address + ' ' + m.toString('hex')));
s.bind(40009, '0.0.0.0', () => console.log('LISTENING'));
`;

t.test('Wake-on-LAN reaches a listener on the provisioning network only, with the right bytes', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'wol' });
  const server = await net.ns('srv');
  const lan = await net.ns('lan');
  const other = await net.ns('other');
  // The server has two interfaces: the provisioning one (10.77.0.0/24) and another
  // (10.88.0.0/24). The packet must go to the provisioning network's broadcast only.
  await net.link({ ns: server, ifname: 'prov0', cidr: '10.77.0.1/24' }, { ns: lan, ifname: 'eth0', cidr: '10.77.0.20/24' });
  await net.link({ ns: server, ifname: 'oth0', cidr: '10.88.0.1/24' }, { ns: other, ifname: 'eth0', cidr: '10.88.0.20/24' });
  await net.waitOperstate(server, 'prov0');
  await net.waitOperstate(server, 'oth0');
  const listenLan = net.spawn(lan, ['node', '-e', LISTENER]);
  const listenOther = net.spawn(other, ['node', '-e', LISTENER]);
  await listenLan.waitForOutput(/LISTENING/);
  await listenOther.waitForOutput(/LISTENING/);
  // The compiled module (npm run build), run inside the server's namespace as the service would.
  const power = path.join(REPO_ROOT, 'dist/packages/webui/power.js');
  t.ok(fs.existsSync(power), 'needs npm run build');
  const send = (address: string, repeat: number) =>
    net.exec(server, ['node', '-e', `require(${JSON.stringify(power)}).sendWakeOnLan('52:54:00:ab:cd:ef', { address: '${address}', prefix: 24, port: 40009, repeat: ${repeat}, intervalMs: 20 }).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e.message); process.exit(14); })`], { env: { PATH: process.env.PATH, NODE_OPTIONS: '' } });
  const result = await send('10.77.0.1', 3);
  t.equal(result.code, 0, result.stderr);
  t.same(JSON.parse(result.stdout), { broadcast: '10.77.0.255', sent: 3 });
  const got = await listenLan.waitForOutput(/(GOT .*\n.*GOT .*\n.*GOT [^\n]*)/s, 5000);
  const packets = got[0].split('\n').filter((l) => l.startsWith('GOT '));
  t.equal(packets.length, 3, 'repeated three times');
  for (const line of packets) {
    const [, from, hex] = line.split(' ');
    t.equal(from, '10.77.0.1', 'sent from the provisioning address');
    t.equal(hex, `ffffffffffff${'525400abcdef'.repeat(16)}`);
  }
  await new Promise((r) => setTimeout(r, 300));
  t.notMatch(listenOther.stdout(), /GOT/, 'nothing on the other interface');
  const bad = await send('10.99.0.1', 1);
  t.equal(bad.code, 14, 'an address the server does not have → POWER_FAILED');
  t.match(bad.stderr, /Wake-on-LAN for 52:54:00:ab:cd:ef to 10\.99\.0\.255:40009 from 10\.99\.0\.1: .*EADDRNOTAVAIL/);
});
