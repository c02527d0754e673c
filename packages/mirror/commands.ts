/**
 * `uec-provisioning mirror sync` and `uec-provisioning mirror status [--json]`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Command, Session } from '../../src/configurator/command';
import { loadConfig } from '../../src/core/config';
import { loadTemplate, templateDirs } from '../../src/core/template';
import { mirrorLayout, parseMirrorSettings, proxyUrl, servedArchiveUrl, upstreamTreePath, type MirrorSettings } from './model';
import { createProgress, formatBytes } from './progress';
import { MIRROR_TEMPLATES } from './render';
import { readSyncState, syncMirrorTree } from './sync';

async function loadSettings(session: Session): Promise<MirrorSettings> {
  return parseMirrorSettings(await loadConfig(session.paths, session.schema));
}

function diskUsage(dir: string): number | null {
  if (!fs.existsSync(dir)) return null;
  try {
    // -L: follow `current` into its tree; hard links counted once.
    const out = execFileSync('du', ['-sbL', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return Number(out.split(/\s/)[0]);
  } catch {
    return null;
  }
}

export const MIRROR_COMMANDS: Command[] = [
  {
    words: ['mirror', 'sync'],
    args: '',
    summary: 'mirror mode: fetch the upstream archive into a staging tree, verify it, switch atomically (iso mode: extract the ISO)',
    options: {},
    optionHelp: [],
    async run(session) {
      const settings = await loadSettings(session);
      const mirrorListTemplate = await loadTemplate(templateDirs(session.paths), MIRROR_TEMPLATES.mirrorList);
      const progress = createProgress(session.io.stderr, Boolean(session.io.interactive));
      const state = await syncMirrorTree({ paths: session.paths, settings, mirrorListTemplate, log: session.log, progress });
      if (session.json) session.io.stdout(`${JSON.stringify(state, null, 2)}\n`);
      else session.log.info(`mirror sync done: generation ${state.generation}, ${state.files} file(s) served, fetched ${state.fetchedFiles} file(s), ${formatBytes(state.fetchedBytes)}`);
      return 0;
    },
  },
  {
    words: ['mirror', 'status'],
    args: '',
    summary: 'show the mirror mode, upstream, last sync and its result, size on disk and served URL',
    options: {},
    optionHelp: [],
    async run(session) {
      const config = await loadConfig(session.paths, session.schema);
      const settings = parseMirrorSettings(config);
      const layout = mirrorLayout(session.paths.resolve(settings.baseDir));
      let host = settings.host;
      if (!host && settings.mode !== 'upstream') {
        try {
          const { loadServerAddress } = await import('../../src/core/server-address');
          host = (await loadServerAddress(config, session.network())).address;
        } catch {
          host = '<server address>';
        }
      }
      const state = await readSyncState(session.paths, settings);
      const serving = settings.mode === 'mirror' || settings.mode === 'iso';
      const tree = settings.mode === 'mirror' ? `${mirrorLayout(settings.baseDir).current}/${upstreamTreePath(settings.upstream)}` : mirrorLayout(settings.baseDir).current;
      const status = {
        mode: settings.mode,
        upstream: settings.mode === 'iso' ? settings.iso : settings.mode === 'proxy' || settings.mode === 'upstream' ? config.getString('archive.main_archive') : settings.upstream,
        served_url: serving ? servedArchiveUrl(host, settings.httpPort) : null,
        http_proxy: settings.mode === 'proxy' ? proxyUrl(host, settings.proxyPort) : null,
        /** The served tree (iso mode: the extracted installer image, for `images import`). */
        tree: serving ? tree : null,
        size_bytes: serving ? diskUsage(`${layout.current}/`) : null,
        last_sync: state,
      };
      if (session.json) {
        session.io.stdout(`${JSON.stringify(status, null, 2)}\n`);
        return 0;
      }
      const lines: [string, string][] = [
        ['mode', status.mode],
        ['upstream', status.upstream],
        ['served url', status.served_url ?? '-'],
        ['http proxy', status.http_proxy ?? '-'],
        ['tree', status.tree ?? '-'],
        ['size on disk', status.size_bytes === null ? '-' : formatBytes(status.size_bytes)],
        ['last sync', state ? `${state.finished} ${state.result}${state.error ? `: ${state.error}` : ''}` : 'never'],
      ];
      for (const [k, v] of lines) session.io.stdout(`${`${k}:`.padEnd(14)}${v}\n`);
      return 0;
    },
  },
];
