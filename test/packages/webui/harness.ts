/** A web UI on 127.0.0.1:0 over a scratch root, with admin and viewer users, for the tests. */
import * as path from 'node:path';
import type { Test } from 'tap';
import type { Session } from '../../../src/configurator/command';
import { mergeSchemas } from '../../../src/configurator/component';
import { writeManagedSettings } from '../../../src/core/config';
import { createLogger } from '../../../src/core/log';
import { createSystemNetworkFacts } from '../../../src/core/network-facts';
import { createFileNodeStore, type NodeStore } from '../../../src/region/node-store';
import type { Paths } from '../../../src/core/paths';
import { component as common } from '../../../packages/common';
import { component as webuiComponent, startWebui } from '../../../packages/webui';
import { createAccountStore } from '../../../packages/webui/accounts';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');

export const ADMIN = { user: 'admin', password: 'admin-password-1' };
export const VIEWER = { user: 'viewer', password: 'viewer-password-1' };

export interface Harness {
  paths: Paths;
  session: Session;
  store: NodeStore;
  base: string;
  port: number;
  logs: string[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** The clock of the login throttle and the sessions (a fake one for backoff tests). */
  now?: () => number;
  /** More managed settings, written before the service starts (webui.trusted_proxies…). */
  settings?: [string, string][];
}

export async function startHarness(t: Test, env: NodeJS.ProcessEnv = process.env, more: HarnessOptions = {}): Promise<Harness> {
  const paths = scratchRoot(t);
  const components = [common, webuiComponent];
  const schema = mergeSchemas(components);
  // Loopback only: a power-on sends its Wake-on-LAN packet to 127.255.255.255, never a real LAN.
  await writeManagedSettings(paths, schema, new Map([['server.interface', 'lo'], ['server.address', '127.0.0.1'], ['webui.wol_port', '40909'], ['webui.wol_repeat', '1'], ...(more.settings ?? [])]));
  const logs: string[] = [];
  const network = createSystemNetworkFacts();
  const store = createFileNodeStore(paths);
  const session: Session = {
    io: { stdout: () => undefined, stderr: (s) => logs.push(s), env },
    paths,
    log: createLogger({ level: 'debug', json: false, write: (l) => logs.push(l) }),
    json: false,
    components,
    schema,
    network: () => network,
    nodeStore: () => store,
  };
  const accounts = createAccountStore(paths);
  await accounts.create(ADMIN.user, 'admin', ADMIN.password);
  await accounts.create(VIEWER.user, 'viewer', VIEWER.password);
  const running = await startWebui(session, { port: 0, host: '127.0.0.1', staticDir: path.join(REPO_ROOT, 'templates/webui/static'), wolIntervalMs: 10, now: more.now });
  const h: Harness = { paths, session, store, port: running.port, base: `http://127.0.0.1:${running.port}/uec-provisioning`, logs, close: running.close };
  t.teardown(() => running.close());
  return h;
}

export interface Client {
  cookie: string;
  csrf: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test responses are checked field by field
  call(method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; text: string; headers: Headers }>;
}

export async function login(h: Harness, who: { user: string; password: string }): Promise<Client> {
  const res = await fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(who) });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  const { csrf } = (await res.json()) as { csrf: string };
  const client: Client = {
    cookie,
    csrf,
    async call(method, route, body, headers = {}) {
      const r = await fetch(`${h.base}${route}`, {
        method,
        redirect: 'manual',
        headers: { Cookie: client.cookie, 'X-CSRF-Token': client.csrf, ...(body !== undefined && typeof body !== 'string' ? { 'Content-Type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await r.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: r.status, json, text, headers: r.headers };
    },
  };
  return client;
}
