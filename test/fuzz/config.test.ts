/**
 * Fuzz: every key of every schema through `config set` (main() in-process, as the CLI runs
 * it). Refused → exit 3 or 2, one line naming the key, the tree under --root unchanged.
 * Accepted → `config get` reads back the value, `config check` loads, and a sample of the
 * accepted values is rendered by every component and checked by the real tools (dnsmasq
 * --test, apache2 -t, acngtool, grub-script-check, debconf-set-selections -c).
 */
import * as fs from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import type { KeySpec } from '../../src/core/config';
import { createFileNodeStore } from '../../src/region/node-store';
import { NODES } from '../packages/tftpd/nodes';
import { scratchRoot } from '../helpers/scratch';
import { assertProperty, checkRenders, cli, fuzzParameters, hashTree, hostileString, isOneLine, looksLikeCrash, newTally, reportTally, runFactor, show, writeBaseSettings } from './lib';

const SCHEMA = mergeSchemas(loadComponents());
const MANAGED = '/etc/uec-provisioning/conf.d/50-managed.conf';
const RUNS_PER_KEY = 12;
/** How many accepted values (one per key first) go through every renderer and the real tools in CI. */
const VALIDATED_IN_CI = 10;

/** Values that pass or nearly pass each format, as the starting points of the mutations. */
const NEAR_VALID: Record<string, string[]> = {
  line: ['bookworm', 'main contrib', '10.20.0.1'],
  hostname: ['mirror.example.org', 'a-b', 'x.'],
  mac: ['52:54:00:12:34:56'],
  ipv4: ['10.20.0.77', '192.0.2.1', '255.255.255.255', '0.0.0.0', '10.20.0.5'],
  url: ['http://deb.debian.org/debian', 'https://mirror.example.org:8443/debian/', 'http://[::1]/x', 'http://user:pw@host/a?b=c#d'],
  interface: ['eth0', 'br0.100', 'lo', 'enp1s0@x'],
  path: ['/srv/mirror', '/etc/uec-provisioning/authorized_keys', '/usr/share/keyrings/debian-archive-keyring.gpg'],
  'kernel-args': ['console=ttyS0,115200 quiet', 'ip=::::::dhcp net.ifnames=0'],
  word: ['debian', 'bookworm', 'a.b_c+d-e'],
};
const KEY_VALID: Record<string, string[]> = {
  'dhcp.dns_servers': ['10.20.0.1', '10.20.0.1,1.1.1.1', '10.20.0.1, 9.9.9.9'],
  'mirror.suites': ['bookworm bookworm-updates', 'trixie'],
  'mirror.architectures': ['amd64 arm64', 'i386'],
  'mirror.components': ['main non-free-firmware', 'main'],
  'region.authorized_keys_file': ['/etc/uec-provisioning/authorized_keys.lab'],
};

function validValues(full: string, spec: KeySpec): fc.Arbitrary<string> {
  switch (spec.type) {
    case 'integer': {
      const min = spec.min ?? -1e6;
      const max = spec.max ?? 1e6;
      return fc.oneof(
        fc.integer({ min, max }).map(String),
        fc.constantFrom(min - 1, max + 1, min, max).map(String),
        fc.constantFrom('1e3', '0x10', '+5', '-0', '007', '9'.repeat(40), '1.5', ' 42 '),
      );
    }
    case 'boolean':
      return fc.constantFrom('true', 'false', 'yes', 'no', 'on', 'off', '1', '0', 'TRUE', 'Yes', 'y', 'nope', '');
    case 'enum':
      return fc.oneof(fc.constantFrom(...(spec.values ?? [])), fc.constantFrom(...(spec.values ?? [])).map((v) => v.toUpperCase()));
    case 'string':
      return fc.constantFrom(...(KEY_VALID[full] ?? NEAR_VALID[spec.format ?? 'line'] ?? ['x']), ...(spec.allowEmpty ? [''] : []));
  }
}

/** What `config get` must print for an accepted value: the value as loaded (trimmed, typed). */
function expectedReadBack(spec: KeySpec, raw: string): string {
  const v = raw.trim();
  if (spec.type === 'integer') return String(Number(v));
  if (spec.type === 'boolean') return ['true', 'yes', 'on', '1'].includes(v.toLowerCase()) ? 'true' : 'false';
  return v;
}

t.test('config set: every key, hostile values', async (t) => {
  const paths = scratchRoot(t);
  await createFileNodeStore(paths).update((nodes) => void nodes.push(...NODES));
  await writeBaseSettings(paths);
  const baseManaged = fs.readFileSync(paths.resolve(MANAGED));
  const tally = newTally('config values (config set)');
  const accepted: [string, string][] = [];
  const keys = Object.entries(SCHEMA).flatMap(([section, s]) => Object.entries(s.keys).map(([key, spec]) => [`${section}.${key}`, spec] as const));
  for (const [full, spec] of keys) {
    await t.test(full, async (t) => {
      await assertProperty(
        t,
        full,
        fc.asyncProperty(hostileString(validValues(full, spec)), async (value) => {
          fs.writeFileSync(paths.resolve(MANAGED), baseManaged);
          const before = hashTree(paths.root);
          tally.tried++;
          const r = await cli(paths, ['config', 'set', `${full}=${value}`]);
          if (looksLikeCrash(r.stderr) || r.code === 1) {
            tally.crashes++;
            throw new Error(`crash: ${show(value)} → exit ${r.code}: ${show(r.stderr)}`);
          }
          if (r.code !== 0) {
            const problems = [
              [2, 3].includes(r.code) ? '' : `exit ${r.code}`,
              isOneLine(r.stderr) ? '' : 'not one line',
              r.stderr.includes(full) ? '' : 'does not name the key',
            ].filter(Boolean);
            if (hashTree(paths.root) !== before) {
              tally.stateChanged++;
              problems.push('the tree changed');
            }
            if (problems.length > 0) throw new Error(`${show(value)} refused badly (${problems.join(', ')}): ${show(r.stderr)}`);
            return;
          }
          tally.accepted++;
          const got = await cli(paths, ['config', 'get', full]);
          const check = await cli(paths, ['config', 'check']);
          if (got.code !== 0 || got.stdout !== `${expectedReadBack(spec, value)}\n` || check.code !== 0) {
            tally.wronglyAccepted++;
            throw new Error(`${show(value)} accepted but reads back as ${show(got.stdout)} (exit ${got.code}), config check exit ${check.code}: ${show(got.stderr + check.stderr)}`);
          }
          if (expectedReadBack(spec, value) !== String(spec.default)) accepted.push([full, value]);
        }),
        fuzzParameters(`config:${full}`, RUNS_PER_KEY),
      );
    });
  }

  await t.test('a sample of the accepted values renders and passes the real tools', async (t) => {
    // One value per key first, then more, so every key that accepts something is rendered.
    const firstPerKey = [...new Map(accepted.map((a) => [a[0], a])).values()];
    const rest = accepted.filter((a) => !firstPerKey.includes(a));
    const budget = VALIDATED_IN_CI * runFactor();
    const step = Math.max(1, Math.floor(firstPerKey.length / budget));
    const sample = [...firstPerKey.filter((_, i) => i % step === 0), ...rest].slice(0, budget);
    t.ok(sample.length > 0, 'some values were accepted');
    for (const [full, value] of sample) {
      fs.writeFileSync(paths.resolve(MANAGED), baseManaged);
      const set = await cli(paths, ['config', 'set', `${full}=${value}`]);
      t.equal(set.code, 0, `${full}=${show(value)} set again`);
      const { problems, refusedByApply } = await checkRenders(paths, { hostname: 'deploy-me', mac: '52:54:00:00:00:01' });
      if (refusedByApply) {
        tally.refusedByApply++;
        t.comment(`${full}=${show(value)}: apply refused the combination, nothing written: ${refusedByApply}`);
        continue;
      }
      tally.validated++;
      if (problems.length > 0) tally.wronglyAccepted++;
      t.same(problems, [], `${full}=${show(value)}: every render passes the real tools`);
    }
  });
  reportTally(tally);
  t.equal(tally.crashes, 0, 'no crash');
  t.equal(tally.wronglyAccepted, 0, 'nothing wrongly accepted');
  t.equal(tally.stateChanged, 0, 'no refused value changed anything');
  t.comment(`config: ${JSON.stringify(tally)}`);
});
