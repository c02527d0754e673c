/**
 * A region and its edges as real processes in network namespaces (issue 14 item 6), shared by
 * test/src/edge-netns.test.ts (curl clients) and test/e2e/region-away.test.ts (a VM):
 * the backbone between the region and the edges, `uec-provisioning serve` started in a
 * namespace, HTTP from a namespace, polling, and dnsmasq run with the files an `apply` rendered
 * under a scratch --root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NetnsProcess, TestNetwork } from './netns';
import type { Paths } from '../../src/core/paths';

/** GET `url` with curl inside `ns`; status 0 when nothing answered. */
export async function curlIn(net: TestNetwork, ns: string, url: string): Promise<{ status: number; body: string }> {
  const r = await net.exec(ns, ['curl', '-s', '--max-time', '20', '-w', '\n%{http_code}', url], { timeoutMs: 30_000 });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}

/** Polls `check` four times a second until it gives a truthy value; throws naming `what` after `seconds`. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, seconds = 90): Promise<T> {
  for (let i = 0; i < seconds * 4; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

/**
 * A region namespace with a bridge `bb` holding `regionCidr`, and each edge namespace linked
 * to it (veth `v-<label>` in the region's bridge, `up0` with the edge's address on the edge).
 */
export async function createBackbone(net: TestNetwork, region: string, regionCidr: string, edges: readonly { ns: string; label: string; cidr: string }[]): Promise<void> {
  await net.bridge(region, 'bb');
  await net.addr(region, 'bb', regionCidr);
  await net.up(region, 'bb');
  for (const edge of edges) {
    await net.link({ ns: region, ifname: `v-${edge.label}` }, { ns: edge.ns, ifname: 'up0', cidr: edge.cidr });
    await net.attach(region, `v-${edge.label}`, 'bb');
  }
}

/** How `serve` is started: the transpiled CLI and the environment of every child. */
export interface Launcher {
  cli: string;
  env: NodeJS.ProcessEnv;
}

/** `uec-provisioning --root ROOT --verbose serve ARGS` in `ns`, once it listens. */
export async function startServe(net: TestNetwork, launcher: Launcher, ns: string, paths: Paths, args: readonly string[]): Promise<NetnsProcess> {
  const p = net.spawn(ns, [process.execPath, launcher.cli, '--root', paths.root, '--verbose', 'serve', '--port', '5248', ...args], { env: launcher.env });
  await p.waitForOutput(/listening on/, 120_000);
  return p;
}

/** `uec-provisioning --root ROOT ARGS` in `ns`; its stdout, or an error with its stderr. */
export async function cliIn(net: TestNetwork, launcher: Launcher, ns: string, paths: Paths, args: readonly string[]): Promise<string> {
  const r = await net.exec(ns, [process.execPath, launcher.cli, '--root', paths.root, ...args], { env: launcher.env, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`uec-provisioning ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/**
 * dnsmasq with a config file that `apply` rendered under the scratch root `paths`, byte for
 * byte: the files name system paths (/etc/uec-provisioning, /var/lib/uec-provisioning, /run),
 * so dnsmasq runs in a private mount namespace where those are the scratch root's directories
 * (each over a throw-away overlay of its parent, so no mount point appears on the host) and
 * /run is an empty tmpfs. `workDir` must be world-readable (dnsmasq drops to nobody).
 */
export function spawnRenderedDnsmasq(net: TestNetwork, ns: string, paths: Paths, workDir: string, configSystemPath: string): NetnsProcess {
  const sq = (s: string) => `'${s.split(`'`).join(`'"'"'`)}'`;
  const scratch = fs.mkdtempSync(path.join(workDir, 'mounts-'));
  const script: string[] = [`mount -t tmpfs none ${sq(scratch)}`];
  ['/etc/uec-provisioning', '/var/lib/uec-provisioning'].forEach((dir, n) => {
    const [upper, work, parent] = [`${scratch}/upper${n}`, `${scratch}/work${n}`, path.dirname(dir)];
    script.push(
      `mkdir ${sq(upper)} ${sq(work)}`,
      `mount -t overlay none -o lowerdir=${parent},upperdir=${upper},workdir=${work} ${parent}`,
      `mkdir -p ${dir}`,
      `mount --bind ${sq(paths.resolve(dir))} ${dir}`,
    );
  });
  script.push('mount -t tmpfs none /run', `exec dnsmasq --keep-in-foreground --log-facility=- --conf-file=${sq(configSystemPath)}`);
  return net.spawn(ns, ['unshare', '--mount', '--propagation', 'private', 'sh', '-ec', script.join('\n')]);
}
