// The dashboard's health panel reads the real [dhcp] and [mirror] settings and the mirror's
// state file, with the schemas of the packages that own them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { mergeSchemas } from '../../../src/configurator/component';
import { loadConfig, writeManagedSettings } from '../../../src/core/config';
import { component as common } from '../../../packages/common';
import { component as dhcpd } from '../../../packages/dhcpd';
import { component as mirror } from '../../../packages/mirror';
import { component as webui } from '../../../packages/webui';
import { loadHealth } from '../../../packages/webui/health';
import { scratchRoot } from '../../helpers/scratch';

const noProcesses = async () => new Set<string>();

t.test('without dhcpd and mirror installed, both are reported missing', async (t) => {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas([common, webui]));
  const health = await loadHealth({ paths, config, processNames: noProcesses });
  t.match(health.find((h) => h.name === 'DHCP'), { state: 'missing' });
  t.match(health.find((h) => h.name === 'Mirror'), { state: 'missing' });
});

t.test('DHCP with no interface chosen is off, whatever the mode', async (t) => {
  const paths = scratchRoot(t);
  const schema = mergeSchemas([common, dhcpd, webui]);
  await writeManagedSettings(paths, schema, new Map([['dhcp.mode', 'full']]));
  const health = await loadHealth({ paths, config: await loadConfig(paths, schema), processNames: noProcesses });
  t.match(health.find((h) => h.name === 'DHCP'), { state: 'warn', detail: 'mode full, no interface chosen: DHCP is off' });
  t.match(health.find((h) => h.name === 'dnsmasq'), { state: 'warn', detail: 'not running' });
});

t.test('DHCP mode and interface come from [dhcp]; dnsmasq seen running', async (t) => {
  const paths = scratchRoot(t);
  const schema = mergeSchemas([common, dhcpd, webui]);
  await writeManagedSettings(paths, schema, new Map([['dhcp.mode', 'proxy'], ['dhcp.interface', 'lo']]));
  const health = await loadHealth({ paths, config: await loadConfig(paths, schema), processNames: async () => new Set(['dnsmasq']) });
  t.match(health.find((h) => h.name === 'DHCP'), { state: 'ok', detail: 'mode proxy, interface lo' });
  t.match(health.find((h) => h.name === 'dnsmasq'), { state: 'ok' });
});

t.test('the mirror line shows the last sync from <mirror.base_dir>/state.json', async (t) => {
  const paths = scratchRoot(t);
  const schema = mergeSchemas([common, mirror, webui]);
  await writeManagedSettings(paths, schema, new Map([['mirror.mode', 'mirror'], ['mirror.base_dir', '/srv/m']]));
  const config = await loadConfig(paths, schema);
  t.match((await loadHealth({ paths, config, processNames: noProcesses })).find((h) => h.name === 'Mirror'), { state: 'warn', detail: 'mode mirror, last sync never' });
  const stateFile = paths.resolve('/srv/m/state.json');
  fs.mkdirSync(path.dirname(stateFile), { recursive: true });
  fs.writeFileSync(stateFile, JSON.stringify({ result: 'failed', finished: '2026-12-01T03:30:00.000Z', error: 'disk full' }));
  t.match((await loadHealth({ paths, config, processNames: noProcesses })).find((h) => h.name === 'Mirror'), { state: 'warn', detail: 'mode mirror, last sync 2026-12-01T03:30:00.000Z failed: disk full' });
  fs.writeFileSync(stateFile, JSON.stringify({ result: 'ok', finished: '2026-12-02T03:30:00.000Z' }));
  t.match((await loadHealth({ paths, config, processNames: noProcesses })).find((h) => h.name === 'Mirror'), { state: 'ok', detail: 'mode mirror, last sync 2026-12-02T03:30:00.000Z ok' });
});
