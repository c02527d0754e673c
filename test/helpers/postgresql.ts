/**
 * A throw-away PostgreSQL server for tests: initdb + pg_ctl (Debian's postgresql-15, from
 * /usr/lib/postgresql/15/bin) in a temporary directory, run as the unprivileged user `nobody`
 * (postgres refuses root), reachable only through a unix socket in that directory
 * (listen_addresses='': no TCP port on any network). Stopped and removed in teardown, and on
 * process exit. Trust authentication on the socket: the directory is 0700-ish to everyone
 * but root and nobody.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';

export const PG_BIN = process.env.UECP_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const RUN_AS = 'nobody';

export interface TestPostgres {
  /** The socket directory: the `host` of a connection. */
  host: string;
  port: number;
  user: string;
  /** A new empty database; its connection options. */
  createDatabase(name?: string): Promise<{ host: string; port: number; user: string; database: string }>;
  /** Stop the server (immediate) and remove its directory. */
  stop(): void;
}

/** Why PostgreSQL cannot run here (for t.skip), or null. */
export function checkPostgresAvailable(): string | null {
  if (!fs.existsSync(path.join(PG_BIN, 'initdb'))) return `no ${PG_BIN}/initdb (apt-get install postgresql-15)`;
  if (process.getuid?.() !== 0) return 'needs root (to run postgres as nobody)';
  return null;
}

function runAsNobody(args: string[], what: string): void {
  const result = spawnSync('runuser', ['-u', RUN_AS, '--', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`${what} failed (${result.status ?? result.signal}): ${result.stderr || result.stdout}`);
}

let counter = 0;

export interface StartPostgresOptions {
  /**
   * Keep PostgreSQL's defaults for durability (fsync, synchronous_commit, full_page_writes on),
   * as a real site runs it: the benchmarks. Tests leave them off (faster, nothing to keep).
   */
  durable?: boolean;
}

/** The server's -o settings (pure). */
function renderPostgresSettings(dir: string, port: number, options: StartPostgresOptions = {}): string {
  const safety = options.durable ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'];
  return [`-c listen_addresses=''`, `-k ${dir}`, `-p ${port}`, ...safety, '-c max_connections=60'].join(' ');
}

/** `t` is a tap test, or anything with teardown (a benchmark's list of clean-ups). */
export async function startPostgres(t: { teardown(fn: () => unknown): void }, options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uecp-pg-'));
  const data = path.join(dir, 'data');
  fs.chmodSync(dir, 0o700);
  spawnSync('chown', [`${RUN_AS}:`, dir]);
  const port = 5432;
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    spawnSync('runuser', ['-u', RUN_AS, '--', path.join(PG_BIN, 'pg_ctl'), 'stop', '-D', data, '-m', 'immediate', '-s'], { timeout: 60_000 });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  t.teardown(() => {
    process.removeListener('exit', stop);
    stop();
  });
  runAsNobody([path.join(PG_BIN, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', ...(options.durable ? [] : ['--no-sync'])], 'initdb');
  const settings = renderPostgresSettings(dir, port, options);
  runAsNobody([path.join(PG_BIN, 'pg_ctl'), 'start', '-D', data, '-w', '-s', '-l', path.join(dir, 'log'), '-o', settings], 'pg_ctl start');
  const admin = { host: dir, port, user: 'postgres' };
  return {
    ...admin,
    async createDatabase(name = `t${process.pid}_${++counter}`) {
      const client = new pg.Client({ ...admin, database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return { ...admin, database: name };
    },
    stop,
  };
}
