import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Component } from '../../src/configurator/component';
import { usageError, type Command, type Session } from '../../src/configurator/command';
import { loadConfig } from '../../src/core/config';
import { UecError, describeError } from '../../src/core/errors';
import { NODES_FILE } from '../../src/region/node-store';
import { SYSTEM_CLOCK } from '../../src/region/node-ops';
import { loadTemplate, templateDirs } from '../../src/core/template';
import { atomicWrite } from '../../src/core/atomic-write';
import { REDACTED, loadProcessActor, recordAudit } from '../../src/core/audit';
import { getNode } from '../../src/region/node-store';
import { createAccountStore, generatePassword, INITIAL_PASSWORD_FILE, type UserRole } from './accounts';
import { createWebui } from './app';
import { parseTrustedProxies } from './client-address';
import { WEBUI_SCHEMA } from './config-schema';
import { createLiveNodes } from './live';
import { createBmcStore, POWER_ACTIONS, type PowerAction } from './power';
import { renderApacheConf } from './render';
import { createLoginThrottle, createSessionTable, throttleLimits } from './sessions';

function opt(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Start the web UI in this process (used by `webui serve` and the tests). */
export async function startWebui(session: Session, settings: { port?: number; host?: string; staticDir?: string; wolIntervalMs?: number; now?: () => number } = {}) {
  const config = await loadConfig(session.paths, session.schema);
  // Checked by the schema when the config loads; an unparsable value cannot get here.
  const trustedProxies = parseTrustedProxies(config.getString('webui.trusted_proxies')) ?? [];
  const store = session.nodeStore();
  const live = createLiveNodes(store, session.paths.resolve(NODES_FILE), session.log);
  const commands = session.components.flatMap((c) => c.commands ?? []);
  const webui = createWebui({
    paths: session.paths,
    schema: session.schema,
    loadConfig: () => loadConfig(session.paths, session.schema),
    store,
    accounts: createAccountStore(session.paths),
    bmcs: createBmcStore(session.paths),
    sessions: createSessionTable(config.getNumber('webui.session_hours') * 3600_000, settings.now),
    throttle: createLoginThrottle(throttleLimits(config.getNumber('webui.login_attempts')), settings.now),
    live,
    network: session.network(),
    log: session.log.child({ component: 'webui' }),
    clock: SYSTEM_CLOCK,
    staticDir: settings.staticDir ?? path.join(templateDirs(session.paths).shipped, 'webui', 'static'),
    commands,
    cliArgv: [process.execPath, path.resolve(__dirname, '..', '..', 'src', 'cli.js')],
    wolIntervalMs: settings.wolIntervalMs,
    trustedProxies,
    env: session.io.env,
  });
  const server = http.createServer((req, res) => {
    // A request must never take the service down: log it, and end the answer if it is still open.
    webui.handle(req, res).catch((err: unknown) => {
      session.log.error(`web UI ${req.method} ${(req.url ?? '').split('?')[0]}: ${describeError(err)}`, { code: 'INTERNAL' });
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error\n');
      else if (!res.writableEnded) res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 60_000;
  const port = settings.port ?? config.getNumber('webui.port');
  const host = settings.host ?? (config.getString('webui.listen') || '0.0.0.0');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UecError('INTERNAL', `cannot listen on ${host}:${port}: ${describeError(err)}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  session.log.info(`web UI listening on ${host}:${actual}/uec-provisioning/`);
  return {
    port: actual,
    webui,
    live,
    close: () =>
      new Promise<void>((resolve) => {
        webui.close();
        live.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const COMMANDS: Command[] = [
  {
    words: ['webui', 'serve'],
    args: '',
    summary: 'run the web front end and its REST API (port webui.port)',
    options: { port: { type: 'string' }, listen: { type: 'string' } },
    optionHelp: [
      ['--port N', 'TCP port (default webui.port)'],
      ['--listen ADDR', 'address to listen on (default webui.listen)'],
    ],
    async run(session, _p, values) {
      const portText = opt(values, 'port');
      const port = portText === undefined ? undefined : Number(portText);
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw usageError(`--port ${JSON.stringify(portText)} is not a TCP port`);
      const running = await startWebui(session, { port, host: opt(values, 'listen') });
      if (session.json) session.io.stdout(`${JSON.stringify({ port: running.port })}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void running.close().then(resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      return 0;
    },
  },
  {
    words: ['webui', 'user', 'add'],
    args: 'NAME',
    summary: 'create a web UI user; the password is read from stdin (--password-stdin) or generated and printed once',
    options: { role: { type: 'string' }, 'password-stdin': { type: 'boolean' }, 'if-none': { type: 'boolean' } },
    optionHelp: [
      ['--role ROLE', 'admin (default) or viewer'],
      ['--password-stdin', 'read the password from stdin'],
      ['--if-none', 'do nothing when any user exists (package installation)'],
    ],
    async run(session, positionals, values) {
      if (positionals.length !== 1) throw usageError('webui user add needs one NAME');
      const accounts = createAccountStore(session.paths);
      if (values['if-none'] && (await accounts.list()).length > 0) {
        session.log.info('a web UI user exists already; none created');
        return 0;
      }
      const generated = !values['password-stdin'];
      const password = generated ? generatePassword() : await readStdin();
      const user = await accounts.create(positionals[0]!, (opt(values, 'role') ?? 'admin') as UserRole, password);
      await recordAudit(session.paths, loadProcessActor(session.io.env), 'user.add', { user: user.name }, { role: { before: null, after: user.role }, password: { before: null, after: REDACTED } }, session.log);
      if (generated) {
        await atomicWrite(session.paths.resolve(INITIAL_PASSWORD_FILE), `${user.name} ${password}\n`, { mode: 0o600 });
        session.io.stderr(`uec-provisioning: web UI user ${user.name} created with password: ${password}\n(also in ${INITIAL_PASSWORD_FILE}, readable by root only; change it after logging in)\n`);
      } else session.log.info(`web UI user ${user.name} (${user.role}) created`);
      return 0;
    },
  },
  {
    words: ['webui', 'user', 'passwd'],
    args: 'NAME',
    summary: 'set a web UI user\'s password from stdin; the user\'s sessions end',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('webui user passwd needs one NAME');
      const user = await createAccountStore(session.paths).setPassword(positionals[0]!, await readStdin());
      await recordAudit(session.paths, loadProcessActor(session.io.env), 'user.passwd', { user: user.name }, { password: { before: REDACTED, after: REDACTED } }, session.log);
      session.log.info(`password of ${user.name} changed; their sessions end`);
      return 0;
    },
  },
  {
    words: ['webui', 'token', 'create'],
    args: 'USER NAME',
    summary: 'create an API token for USER and print it (once)',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 2) throw usageError('webui token create needs USER and NAME');
      const { token, secret } = await createAccountStore(session.paths).createToken(positionals[0]!, positionals[1]!);
      await recordAudit(session.paths, loadProcessActor(session.io.env), 'token.create', { user: token.user, token: token.id, name: token.name }, {}, session.log);
      session.io.stdout(`${secret}\n`);
      return 0;
    },
  },
  {
    words: ['webui', 'api'],
    args: 'METHOD PATH [JSON]',
    summary: 'call the web UI REST API of a (remote) server with an API token',
    options: { url: { type: 'string' }, 'token-file': { type: 'string' } },
    optionHelp: [
      ['--url URL', 'the server (default http://127.0.0.1:<webui.port>)'],
      ['--token-file FILE', 'file holding the API token (default $UEC_PROVISIONING_TOKEN)'],
    ],
    async run(session, positionals, values) {
      const [method, apiPath, body] = positionals;
      if (!method || !apiPath || !/^(GET|POST|PUT|DELETE)$/.test(method.toUpperCase()) || !apiPath.startsWith('/')) throw usageError('webui api needs METHOD (GET, POST, PUT, DELETE) and a PATH such as /nodes');
      const config = await loadConfig(session.paths, session.schema);
      const base = (opt(values, 'url') ?? `http://127.0.0.1:${config.getNumber('webui.port')}`).replace(/\/$/, '');
      const tokenFile = opt(values, 'token-file');
      const { readFile } = await import('node:fs/promises');
      const token = tokenFile ? (await readFile(tokenFile, 'utf8')).trim() : (session.io.env.UEC_PROVISIONING_TOKEN ?? '');
      if (!token) throw usageError('give --token-file or set UEC_PROVISIONING_TOKEN');
      let res: Response;
      try {
        res = await fetch(`${base}/uec-provisioning/api${apiPath}`, { method: method.toUpperCase(), headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body ?? undefined });
      } catch (err) {
        throw new UecError('UPSTREAM_FAILED', `cannot reach ${base}: ${describeError(err)}`, { cause: err });
      }
      const text = await res.text();
      session.io.stdout(text.endsWith('\n') ? text : `${text}\n`);
      if (!res.ok) throw new UecError(res.status === 401 || res.status === 403 ? 'ACCOUNT_FAILED' : 'UPSTREAM_FAILED', `${method.toUpperCase()} ${apiPath}: HTTP ${res.status}`);
      return 0;
    },
  },
  {
    words: ['webui', 'power'],
    args: 'NODE on|off|cycle',
    summary: 'power a node on (IPMI, else Wake-on-LAN), off or cycle (IPMI); recorded on the node',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      const [ref, action] = positionals;
      if (!ref || !action || !(POWER_ACTIONS as readonly string[]).includes(action)) throw usageError('webui power needs NODE and on, off or cycle');
      const running = await startWebui(session, { port: 0, host: '127.0.0.1' });
      try {
        session.io.stdout(`${await running.webui.power(ref, action as PowerAction, 'cli')}\n`);
        const node = await getNode(session.nodeStore(), ref);
        await recordAudit(session.paths, loadProcessActor(session.io.env), `power.${action as PowerAction}`, { systemId: node.systemId, hostname: node.hostname }, {}, session.log);
      } finally {
        await running.close();
      }
      return 0;
    },
  },
];

/**
 * uec-provisioning-webui: the web front end (deploy roles, power machines, watch installs)
 * and its REST API, plus the apache2 reverse-proxy drop-in at /uec-provisioning/.
 */
export const component: Component = {
  name: 'webui',
  package: 'uec-provisioning-webui',
  summary: 'web front end and REST API: deploy roles, power machines on, watch installs',
  configSchema: WEBUI_SCHEMA,
  async plan(context) {
    // apache2 is only recommended: without it there is nothing to proxy and nothing to write.
    if (!fs.existsSync(context.paths.resolve('/etc/apache2'))) {
      context.log.info('apache2 is not installed: no reverse-proxy drop-in (the web UI is on its own port)');
      return [];
    }
    const template = await loadTemplate(context.templates, 'webui/apache-proxy.conf.mustache');
    return [renderApacheConf(template, context.config.getNumber('webui.port'))];
  },
  commands: COMMANDS,
};
