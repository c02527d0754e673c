/**
 * A small signed Debian archive for the mirror tests: a throw-away gpg key in a temp
 * GNUPGHOME, tiny packages built with dpkg-deb (one udeb), published by reprepro in two
 * suites, and served over HTTP on loopback by a small node server that counts the bytes it
 * sends (the "upstream"). Everything lives in one temp directory removed in teardown.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface TestArchive {
  dir: string;
  /** reprepro's published tree (dists/, pool/). */
  publicDir: string;
  /** gpg keyring (binary) holding the archive's public key, for gpgv and apt. */
  keyring: string;
  gnupgHome: string;
  suites: string[];
  /** Rebuild the archive's indexes (after adding a package), signing again. */
  addPackage(suite: string, name: string, version: string, payload?: string): void;
  remove(): void;
}

export interface Upstream {
  url: string;
  /** Bytes of response bodies sent since start (or the last reset). */
  bytesSent(): number;
  requests(): string[];
  reset(): void;
  close(): Promise<void>;
}

function run(program: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): string {
  return execFileSync(program, args, { env, cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function buildDeb(workDir: string, name: string, version: string, udeb: boolean, payload?: string): string {
  const root = path.join(workDir, `${name}-${version}`);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr', 'share', name), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr', 'share', name, 'hello.txt'), `${name} ${version}\n${'x'.repeat(2000)}\n`);
  if (payload) fs.copyFileSync(payload, path.join(root, 'usr', 'share', name, 'payload.bin'));
  const control = [
    `Package: ${name}`,
    `Version: ${version}`,
    `Architecture: all`,
    `Maintainer: Test <test@example.invalid>`,
    `Section: ${udeb ? 'debian-installer' : 'misc'}`,
    `Priority: optional`,
    ...(udeb ? ['Package-Type: udeb'] : []),
    `Description: tiny ${udeb ? 'udeb' : 'package'} for the uec-provisioning mirror tests`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), control);
  const out = path.join(workDir, `${name}_${version}_all.${udeb ? 'udeb' : 'deb'}`);
  run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, out]);
  return out;
}

export function createTestArchive(suites: string[] = ['stable', 'testing']): TestArchive {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-test-archive-'));
  fs.chmodSync(dir, 0o755);
  const gnupgHome = path.join(dir, 'gnupg');
  fs.mkdirSync(gnupgHome, { mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: gnupgHome };
  run('gpg', ['--batch', '--quiet', '--passphrase', '', '--quick-gen-key', 'uec-provisioning test archive <test@example.invalid>', 'rsa2048', 'sign', 'never'], env);
  const fingerprint = /^fpr:+([0-9A-F]+):/m.exec(run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], env))?.[1];
  if (!fingerprint) throw new Error('test archive: gpg made no key');
  const keyring = path.join(dir, 'archive-keyring.gpg');
  fs.writeFileSync(keyring, execFileSync('gpg', ['--batch', '--export', fingerprint], { env }));
  const publicDir = path.join(dir, 'public');
  const conf = path.join(dir, 'reprepro', 'conf');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(
    path.join(conf, 'distributions'),
    suites
      .map((s) =>
        [`Codename: ${s}`, `Suite: ${s}`, 'Architectures: amd64', 'Components: main', 'UDebComponents: main', `SignWith: ${fingerprint}`, 'Description: test archive', ''].join('\n'),
      )
      .join('\n'),
  );
  fs.writeFileSync(path.join(conf, 'options'), `outdir ${publicDir}\n`);
  const reprepro = (args: string[]) => run('reprepro', ['--silent', '-b', path.join(dir, 'reprepro'), ...args], env);
  const debs = path.join(dir, 'debs');
  fs.mkdirSync(debs);
  const built = new Map<string, string>();
  const deb = (name: string, version: string, udeb: boolean): string => {
    const key = `${name}_${version}`;
    const file = built.get(key) ?? buildDeb(debs, name, version, udeb);
    built.set(key, file);
    return file;
  };
  for (const suite of suites) {
    for (const name of ['uec-hello', 'uec-world']) reprepro(['includedeb', suite, deb(name, suite === suites[0] ? '1.0' : '2.0', false)]);
    reprepro(['includeudeb', suite, deb('uec-installer-bit', '1.0', true)]);
  }
  return {
    dir,
    publicDir,
    keyring,
    gnupgHome,
    suites,
    addPackage(suite, name, version, payload) {
      reprepro(['includedeb', suite, payload ? buildDeb(debs, name, version, false, payload) : deb(name, version, false)]);
    },
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Serve a directory read-only over HTTP on 127.0.0.1 (port 0), counting the bytes sent. */
export async function serveDirectory(root: string, host = '127.0.0.1', port = 0): Promise<Upstream> {
  let sent = 0;
  let seen: string[] = [];
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    seen.push(`${req.method} ${urlPath}`);
    const file = path.join(root, path.normalize(urlPath));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const headers = { 'content-length': String(st.size), 'last-modified': st.mtime.toUTCString(), 'content-type': 'application/octet-stream' };
      const since = req.headers['if-modified-since'];
      if (since && Math.floor(st.mtimeMs / 1000) <= Math.floor(Date.parse(since) / 1000)) {
        res.writeHead(304).end();
        return;
      }
      res.writeHead(200, headers);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      const stream = fs.createReadStream(file);
      stream.on('data', (chunk) => (sent += chunk.length));
      stream.pipe(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    bytesSent: () => sent,
    requests: () => seen,
    reset: () => {
      sent = 0;
      seen = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
