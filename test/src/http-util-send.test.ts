/**
 * send() with a file (how serve answers /boot/images/… kernels and initrds): the exact bytes
 * and Content-Length over several read chunks, HEAD, an empty file, and what happens when the
 * client goes away or the file changes between its stat and the transfer.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { FILE_CHUNK_BYTES, send } from '../../src/core/http-util';

interface Served {
  url: string;
  dir: string;
  /** What the next request is answered with: a file and the size its stat gave. */
  serve: (file: string, size: number) => void;
}

async function server(t: Test): Promise<Served> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-send-'));
  let next = { file: '', size: 0 };
  const srv = http.createServer((req, res) => send(res, { status: 200, body: '', file: next.file, size: next.size }, req.method));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    srv.closeAllConnections();
    await new Promise((resolve) => srv.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/f`,
    dir,
    serve: (file, size) => (next = { file, size }),
  };
}

/** The answer's status, headers and body, or the error that ended it. */
function fetchRaw(url: string, options: http.RequestOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    req.end();
  });
}

function fileWith(dir: string, name: string, size: number): { file: string; bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return { file, bytes };
}

/** Descriptors of this process open on `file` (Linux /proc). */
function openOn(file: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

async function until(check: () => boolean, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

t.test('a file of several read chunks: its exact bytes and Content-Length; HEAD gives the length and no body', async (t) => {
  const s = await server(t);
  const size = 3 * FILE_CHUNK_BYTES + 12_345;
  const { file, bytes } = fileWith(s.dir, 'initrd.gz', size);
  s.serve(file, size);
  const got = await fetchRaw(s.url);
  if ('error' in got) return t.fail(got.error);
  t.equal(got.status, 200);
  t.equal(got.headers['content-length'], String(size));
  t.equal(got.headers['content-type'], 'application/octet-stream');
  t.equal(got.body.length, size);
  t.ok(got.body.equals(bytes), 'the same bytes');
  const head = await fetchRaw(s.url, { method: 'HEAD' });
  if ('error' in head) return t.fail(head.error);
  t.equal(head.headers['content-length'], String(size));
  t.equal(head.body.length, 0);
  t.equal(openOn(file), 0, 'the file is closed after the transfer');
});

t.test('an empty file: 200, Content-Length 0, no body', async (t) => {
  const s = await server(t);
  const { file } = fileWith(s.dir, 'empty', 0);
  s.serve(file, 0);
  const got = await fetchRaw(s.url);
  if ('error' in got) return t.fail(got.error);
  t.same([got.status, got.headers['content-length'], got.body.length], [200, '0', 0]);
});

t.test('a client gone mid-transfer: the file is closed, not left open', async (t) => {
  const s = await server(t);
  const size = 64 * FILE_CHUNK_BYTES;
  const { file } = fileWith(s.dir, 'big', size);
  s.serve(file, size);
  await new Promise<void>((resolve) => {
    const req = http.get(s.url, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
  });
  t.ok(await until(() => openOn(file) === 0), 'no descriptor left on the file');
});

t.test('a file grown since its stat: only the Content-Length bytes, and the kept-alive connection still works', async (t) => {
  const s = await server(t);
  const { file, bytes } = fileWith(s.dir, 'linux', FILE_CHUNK_BYTES + 10);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  s.serve(file, 1000);
  const first = await fetchRaw(s.url, { agent });
  if ('error' in first) return t.fail(first.error);
  t.equal(first.body.length, 1000);
  t.ok(first.body.equals(bytes.subarray(0, 1000)));
  s.serve(file, bytes.length);
  const second = await fetchRaw(s.url, { agent });
  if ('error' in second) return t.fail(second.error);
  t.equal(second.status, 200);
  t.ok(second.body.equals(bytes), 'the next answer on the connection is whole');
});

t.test('a file cut short since its stat, or gone: the client sees a broken transfer, not a hang', async (t) => {
  const s = await server(t);
  const { file } = fileWith(s.dir, 'short', 5000);
  s.serve(file, 9000);
  const short = await fetchRaw(s.url);
  t.ok('error' in short, `cut short: ${JSON.stringify('error' in short ? short.error : short.status)}`);
  s.serve(path.join(s.dir, 'gone'), 9000);
  const gone = await fetchRaw(s.url);
  t.ok('error' in gone, 'gone');
});
