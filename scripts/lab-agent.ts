/**
 * The lab's agent, run by scripts/lab inside the lab's LAN namespace (never the host's):
 * - listens for Wake-on-LAN magic packets on UDP ports 9 and 7 (what the product sends:
 *   packages/webui/power.ts, to the LAN's directed broadcast) and prints one JSON line per
 *   packet, `{"event":"wol","mac":…,"from":…,"port":…}`; the lab starts that machine;
 * - relays connections from a unix socket (the lab's loopback forward in the host namespace
 *   connects there; namespaces share the filesystem) to the appliance's web server.
 *
 * Usage: node -r ts-node/register/transpile-only scripts/lab-agent.ts SOCKET HOST:PORT
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { parseMagicPacket } from './lab-plan';

function say(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

export function main(argv: string[]): void {
  const [socketPath, target] = argv;
  const m = /^([0-9.]+):(\d+)$/.exec(target ?? '');
  if (!socketPath || !m) {
    process.stderr.write('usage: lab-agent SOCKET HOST:PORT\n');
    process.exit(2);
  }
  const [, host, port] = m;
  let ready = 0;
  const wants = 3;
  const isReady = () => {
    if (++ready === wants) say({ event: 'ready' });
  };
  for (const wolPort of [9, 7]) {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', (msg, rinfo) => {
      const mac = parseMagicPacket(msg);
      if (mac) say({ event: 'wol', mac, from: rinfo.address, port: wolPort });
      else say({ event: 'udp', from: rinfo.address, port: wolPort, bytes: msg.length });
    });
    s.on('error', (err) => {
      say({ event: 'error', what: `udp ${wolPort}`, message: err.message });
      process.exit(1);
    });
    s.bind(wolPort, '0.0.0.0', isReady);
  }
  fs.rmSync(socketPath, { force: true });
  const relay = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: Number(port), host: host!, allowHalfOpen: true });
    // Half-open both ways: a client that ends its request still gets the whole answer.
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  relay.on('error', (err) => {
    say({ event: 'error', what: 'relay', message: err.message });
    process.exit(1);
  });
  relay.listen(socketPath, isReady);
  const stop = () => {
    relay.close();
    fs.rmSync(socketPath, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main(process.argv.slice(2));
