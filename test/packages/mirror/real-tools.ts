/**
 * Real daemons on loopback for the mirror tests, each with its own config and run
 * directory (never the system's): a private apache2 (-f), a private apt-cacher-ng
 * (-c, CacheDir, LogDir, Port), and apt-get with its own Dir::* tree and APT_CONFIG.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A free loopback port apt-cacher-ng can use: Debian 12's apt-cacher-ng 3.7.4 reads its Port
 * as a signed 16-bit number, so above 32767 it fails with "Error resolving address for
 * binding" (measured). Ephemeral ports are all above that, hence a port picked from below.
 */
export async function freeAptCacherNgPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const server = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error('no free loopback port below 32768 for apt-cacher-ng');
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** apache2 in the foreground with a config that loads a few modules and includes `conf`. */
export async function startApache(dir: string, confFile: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  fs.mkdirSync(dir, { recursive: true });
  const mods = ['mpm_event', 'authz_core', 'authz_host', 'alias', 'dir', 'mime', 'autoindex'];
  const conf = [
    'ServerRoot /etc/apache2',
    'ServerName localhost',
    `Listen 127.0.0.1:${port}`,
    `PidFile ${dir}/apache2.pid`,
    `DefaultRuntimeDir ${dir}`,
    `Mutex file:${dir} default`,
    `ErrorLog ${dir}/error.log`,
    'LogFormat "%r %>s %B" plain',
    `CustomLog ${dir}/access.log plain`,
    'User www-data',
    'Group www-data',
    ...mods.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`),
    'TypesConfig /etc/mime.types',
    `DocumentRoot ${dir}`,
    `Include ${confFile}`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'apache2.conf'), conf);
  const child = spawn('/usr/sbin/apache2', ['-f', path.join(dir, 'apache2.conf'), '-DFOREGROUND'], { stdio: 'ignore' });
  await waitForPort(port, child, 'apache2');
  return { port, stop: () => stop(child) };
}

/** apt-cacher-ng with a private config dir (holding the rendered drop-in), cache and log. */
/**
 * Can apt-cacher-ng bind a loopback TCP port here? In some sandboxes (gVisor) its
 * getaddrinfo-based bind fails with "Error resolving address for binding"; the proxy test
 * then says so and is skipped instead of failing for the machine's sake.
 */
export async function startAptCacherNg(dir: string, dropIn: string, port: number): Promise<{ logDir: string; stop: () => Promise<void> }> {
  const confDir = path.join(dir, 'conf');
  const cacheDir = path.join(dir, 'cache');
  const logDir = path.join(dir, 'log');
  for (const d of [confDir, cacheDir, logDir]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(confDir, 'zz_uec-provisioning.conf'), dropIn);
  const child = spawn(
    '/usr/sbin/apt-cacher-ng',
    ['-c', confDir, 'ForeGround=1', `CacheDir=${cacheDir}`, `LogDir=${logDir}`, `PidFile=${dir}/pid`, `SocketPath=${dir}/socket`, 'BindAddress=127.0.0.1', 'SupportDir=/usr/lib/apt-cacher-ng', 'ExThreshold=0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let said = '';
  child.stdout?.on('data', (d: Buffer) => (said += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (said += d.toString()));
  try {
    await waitForPort(port, child, 'apt-cacher-ng');
  } catch (err) {
    await stop(child);
    throw new Error(`${(err as Error).message}: ${said.trim()}`);
  }
  return { logDir, stop: () => stop(child) };
}

/** apt-get confined to `dir`: its own sources, keyring, state, cache; never the machine's. */
export function privateApt(dir: string, sourcesLine: string, keyring: string, proxy = ''): { run: (args: string[], cwd?: string) => Promise<string> } {
  for (const d of ['etc/parts', 'etc/prefs', 'etc/sources.list.d', 'etc/trusted.gpg.d', 'state/lists/partial', 'cache/archives/partial', 'log']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync(keyring, path.join(dir, 'etc/trusted.gpg.d/test-archive.gpg'));
  fs.writeFileSync(path.join(dir, 'etc/sources.list'), `${sourcesLine}\n`);
  fs.writeFileSync(path.join(dir, 'state/status'), '');
  const conf = [
    `Dir::Etc "${dir}/etc";`,
    `Dir::Etc::Parts "${dir}/etc/parts";`,
    `Dir::Etc::PreferencesParts "${dir}/etc/prefs";`,
    `Dir::Etc::SourceList "${dir}/etc/sources.list";`,
    `Dir::Etc::SourceParts "${dir}/etc/sources.list.d";`,
    `Dir::Etc::TrustedParts "${dir}/etc/trusted.gpg.d";`,
    `Dir::State "${dir}/state";`,
    `Dir::State::status "${dir}/state/status";`,
    `Dir::Cache "${dir}/cache";`,
    `Dir::Log "${dir}/log";`,
    'Debug::NoLocking "true";',
    'APT::Architecture "amd64";',
    'APT::Architectures { "amd64"; };',
    'APT::Sandbox::User "root";',
    `Acquire::http::Proxy "${proxy || 'DIRECT'}";`,
    'Acquire::Languages "none";',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'apt.conf'), conf);
  return {
    // Asynchronous on purpose: the test upstream is an HTTP server in this same process, and a
    // synchronous apt-get would block the event loop it answers on (the proxy then times out).
    run: (args, cwd) =>
      new Promise((resolve, reject) => {
        // update: a source that fails to fetch is an error, not a warning.
        execFile('apt-get', ['-q', ...(args[0] === 'update' ? ['--error-on=any'] : []), ...args], { cwd: cwd ?? dir, env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf'), LC_ALL: 'C' }, encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`apt-get ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
          else resolve(stdout);
        });
      }),
  };
}
