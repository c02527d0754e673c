/**
 * A minimal DHCP prober for scripts/bench-apply.ts, run inside the client namespace: for each
 * MAC asked on its control socket (a Unix socket, one MAC per line), it broadcasts one
 * DHCPDISCOVER with that client hardware address (broadcast flag set, so the answer comes back
 * broadcast whatever the interface's own MAC) and answers with the address offered, or "-"
 * when no offer came within 300 ms. One long-lived process: no process start per exchange,
 * so the bench measures dnsmasq, not the client. Usage: dhcp-probe.ts CONTROL_SOCKET
 */
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';

const MAGIC = Buffer.from([99, 130, 83, 99]);

/** A DHCPDISCOVER (RFC 2131): BOOTREQUEST, Ethernet, broadcast flag, the MAC as chaddr. */
export function renderDiscover(mac: string, xid: Buffer): Buffer {
  const packet = Buffer.alloc(300);
  packet[0] = 1; // op: BOOTREQUEST
  packet[1] = 1; // htype: Ethernet
  packet[2] = 6; // hlen
  xid.copy(packet, 4);
  packet.writeUInt16BE(0x8000, 10); // flags: broadcast
  Buffer.from(mac.split(':').map((h) => parseInt(h, 16))).copy(packet, 28);
  MAGIC.copy(packet, 236);
  Buffer.from([53, 1, 1, 255]).copy(packet, 240); // DHCP message type DISCOVER, end
  return packet;
}

/** The offered address of a DHCPOFFER answering `xid`, or null for anything else. */
export function parseOffer(packet: Buffer, xid: Buffer): string | null {
  if (packet.length < 244 || packet[0] !== 2 || !packet.subarray(4, 8).equals(xid) || !packet.subarray(236, 240).equals(MAGIC)) return null;
  for (let i = 240; i + 1 < packet.length && packet[i] !== 255; ) {
    const code = packet[i] ?? 0;
    if (code === 0) {
      i++;
      continue;
    }
    const len = packet[i + 1] ?? 0;
    if (code === 53) return packet[i + 2] === 2 ? [...packet.subarray(16, 20)].join('.') : null;
    i += 2 + len;
  }
  return null;
}

function main(): void {
  const control = process.argv[2];
  if (!control) throw new Error('usage: dhcp-probe.ts CONTROL_SOCKET');
  const udp = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  let waiting: { xid: Buffer; done: (ip: string) => void } | null = null;
  udp.on('message', (msg) => {
    const ip = waiting ? parseOffer(msg, waiting.xid) : null;
    if (ip && waiting) waiting.done(ip);
  });
  const ask = (mac: string) =>
    new Promise<string>((resolve) => {
      const xid = randomBytes(4);
      const timer = setTimeout(() => finish('-'), 300);
      const finish = (ip: string) => {
        clearTimeout(timer);
        waiting = null;
        resolve(ip);
      };
      waiting = { xid, done: finish };
      udp.send(renderDiscover(mac, xid), 67, '255.255.255.255');
    });
  udp.bind(68, () => {
    udp.setBroadcast(true);
    fs.rmSync(control, { force: true });
    const server = net.createServer((socket) => {
      let buffered = '';
      let queue = Promise.resolve();
      socket.on('data', (chunk) => {
        buffered += chunk.toString('utf8');
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const mac of lines) queue = queue.then(async () => void socket.write(`${await ask(mac.trim())}\n`));
      });
    });
    server.listen(control, () => process.stdout.write('dhcp-probe ready\n'));
  });
}

if (require.main === module) main();
