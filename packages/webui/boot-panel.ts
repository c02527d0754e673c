/**
 * The node page's "Boot diagnosis" panel: the same trace and verdict as
 * `uec-provisioning nodes why NODE` (src/region/boot-trace.ts), from the journal of the DHCP
 * and TFTP units. Without access to the journal (the web UI's user is not in
 * systemd-journal/adm) it says so and judges from the node's timeline alone.
 */
import type { Node } from '../../src/contract/node';
import { loadBootLogs, type JournalReader } from '../../src/region/boot-logs';
import { selectBootTrace, selectBootVerdict, type BootVerdict, type TraceEntry } from '../../src/region/boot-trace';
import { html, type Html } from './html';

/** The newest trace lines shown (the CLI shows them all). */
export const BOOT_PANEL_LINES = 40;
/** How far back the panel reads the journal when the node has no deploy to start from. */
const LOOK_BACK_MS = 24 * 3_600_000;

export interface BootPanel {
  verdict: BootVerdict;
  trace: TraceEntry[];
  /** Set when the journal could not be read. */
  warning: string;
}

/** Reads the journal since the node's current attempt started (at most a day back) and judges. */
export async function loadBootPanel(node: Node, now: Date, journal?: JournalReader): Promise<BootPanel> {
  const since = new Date(now.getTime() - LOOK_BACK_MS);
  const logs = await loadBootLogs({ files: [], since, now, journal });
  return { verdict: selectBootVerdict(node, logs.events, now), trace: selectBootTrace(node, logs.events, since.toISOString()), warning: logs.warning };
}

export function renderBootPanel(panel: BootPanel): Html {
  const shown = panel.trace.slice(-BOOT_PANEL_LINES);
  return html`<section aria-labelledby="h-boot"><h2 id="h-boot">Boot diagnosis</h2>
<p data-verdict="${panel.verdict.code}"><strong>${panel.verdict.code}</strong>: ${panel.verdict.summary}</p>
<p>${panel.verdict.hint}</p>
${panel.warning ? html`<p class="error">${panel.warning}</p>` : ''}
${shown.length < panel.trace.length ? html`<p>The newest ${shown.length} of ${panel.trace.length} lines; <code>uec-provisioning nodes why</code> shows them all.</p>` : ''}
<div class="scroll"><table><thead><tr><th scope="col">Time</th><th scope="col">Source</th><th scope="col">What</th></tr></thead><tbody>
${shown.map((e) => html`<tr><td>${e.at}</td><td>${e.source}</td><td>${e.what}</td></tr>`)}
</tbody></table></div></section>`;
}
