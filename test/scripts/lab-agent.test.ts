/**
 * The lab's agent (scripts/lab-agent.ts) in a namespace LAN of the test's own: the product's
 * Wake-on-LAN (packages/webui/power.ts sendWakeOnLan, run in the server's namespace) reaches
 * it on UDP 9 and 7 and it names the MAC; other datagrams are not taken for wake-ups; its
 * unix-socket relay reaches a TCP server across the LAN.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { createTestNetwork, netnsUnavailableReason } from '../helpers/netns';
import { REPO_ROOT } from '../helpers/scratch';

/** Without tap's NODE_OPTIONS where it can (its ESM loaders refuse a .ts main file: the agent is required). */
const CLEAN_ENV = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '' };
const ECHO = `require('node:net').createServer((s) => s.on('data', (d) => s.end('echo:' + d))).listen(8081, '10.69.0.1', () => console.log('LISTENING'));`;

t.test('the agent hears the product\'s Wake-on-LAN on ports 9 and 7 and relays TCP from its socket', { skip: netnsUnavailableReason(), timeout: 120_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-lab-agent-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const netw = createTestNetwork(t, { name: 'agent' });
  const srv = await netw.ns('srv');
  const lan = await netw.ns('lan');
  await netw.link({ ns: srv, ifname: 'eth0', cidr: '10.69.0.1/24' }, { ns: lan, ifname: 'br0', cidr: '10.69.0.2/24' });
  await netw.waitOperstate(srv, 'eth0');
  const echo = netw.spawn(srv, [process.execPath, '-e', ECHO]);
  await echo.waitForOutput(/LISTENING/);
  const sock = path.join(work, 'relay.sock');
  const agent = netw.spawn(lan, [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', `require(${JSON.stringify(path.join(REPO_ROOT, 'scripts/lab-agent.ts'))}).main(${JSON.stringify([sock, '10.69.0.1:8081'])})`], { cwd: REPO_ROOT, env: CLEAN_ENV });
  await agent.waitForOutput(/"event":"ready"/, 60_000);

  const power = path.join(REPO_ROOT, 'packages/webui/power.ts');
  const wake = (mac: string, port: number) =>
    netw.exec(srv, [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', `require(${JSON.stringify(power)}).sendWakeOnLan(${JSON.stringify(mac)}, { address: '10.69.0.1', prefix: 24, port: ${port}, repeat: 1 }).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e.message); process.exit(14); })`], { cwd: REPO_ROOT, env: CLEAN_ENV });
  const nine = await wake('52:54:00:67:00:11', 9);
  t.equal(nine.code, 0, nine.stderr);
  t.same(JSON.parse(nine.stdout), { broadcast: '10.69.0.255', sent: 1 }, 'the product sends to the LAN\'s directed broadcast');
  await agent.waitForOutput(/"event":"wol","mac":"52:54:00:67:00:11","from":"10\.69\.0\.1","port":9/, 10_000);
  t.pass('port 9 (the product\'s default): the agent names the MAC and the sender');
  const seven = await wake('52:54:00:67:00:12', 7);
  t.equal(seven.code, 0, seven.stderr);
  await agent.waitForOutput(/"event":"wol","mac":"52:54:00:67:00:12","from":"10\.69\.0\.1","port":7/, 10_000);
  t.pass('port 7 too');
  const junk = await netw.exec(srv, [process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.bind(0, '10.69.0.1', () => { s.setBroadcast(true); s.send(Buffer.alloc(102, 0xff), 9, '10.69.0.255', () => s.close()); });`]);
  t.equal(junk.code, 0, junk.stderr);
  await agent.waitForOutput(/"event":"udp","from":"10\.69\.0\.1","port":9,"bytes":102/, 10_000);
  t.equal(agent.stdout().match(/"event":"wol"/g)?.length, 2, '102 bytes of 0xff are not a wake-up for ff:ff:ff:ff:ff:ff');

  const reply = await new Promise<string>((resolve, reject) => {
    const c = net.connect(sock);
    let got = '';
    c.on('data', (d) => (got += d.toString('utf8')));
    c.on('end', () => resolve(got));
    c.on('error', reject);
    c.end('hello');
  });
  t.equal(reply, 'echo:hello', 'a connection to the socket reaches the server across the LAN');
});
