/**
 * Why did a node not boot: what dnsmasq (DHCP and TFTP) logged about the node's MACs and
 * leased addresses, merged in time order with the node's own timeline (netboot, preseed,
 * installing, installed… from the provisioning service), and a verdict in plain words.
 *
 * Everything here is pure: the log text and "now" come in as arguments (boot-logs.ts reads
 * the journal or a log file). The line formats are dnsmasq 2.90's own, captured from real
 * runs (test/src/fixtures/boot-trace/). docs/boot-diagnostics.md explains each verdict.
 */
import type { Node } from '../contract/node';

/** Wait this long after an address before saying the machine fetched no loader. */
export const ADDRESS_TO_LOADER_MS = 60_000;
/** Silence after the first-stage loader was sent before saying the firmware refused it. */
export const LOADER_SILENCE_MS = 120_000;
/** The same loader sent this many times in one attempt: the firmware keeps starting over. */
export const LOADER_RETRIES = 3;
/** Silence after the loader read its boot config (pxelinux/GRUB file) with no kernel. */
export const CONFIG_TO_KERNEL_MS = 120_000;
/** Kernel (or install boot script) served, no preseed request yet: the installer's DHCP and DNS. */
export const KERNEL_TO_PRESEED_MS = 10 * 60_000;
/** Preseed fetched, no `installing` call-back: early_command sends it at once. */
export const PRESEED_TO_INSTALLING_MS = 5 * 60_000;
/** `installing`, no `installed`/`deployed`: a slow mirror install takes well under this. */
export const INSTALLING_TO_INSTALLED_MS = 90 * 60_000;

export type WireKind =
  | 'discover'
  | 'no-offer'
  | 'ignored'
  | 'offer'
  | 'request'
  | 'ack'
  | 'nak'
  | 'other-dhcp'
  | 'proxy'
  | 'client-info'
  | 'tftp-sent'
  | 'tftp-failed';

/** One thing dnsmasq logged about one client. */
export interface WireEvent {
  /** ISO 8601 time. */
  at: string;
  source: 'dhcp' | 'tftp';
  kind: WireKind;
  /** Lower-case MAC, or '' (TFTP lines name only the client's address). */
  mac: string;
  /** The address offered/acknowledged, or the TFTP client's address; '' if none. */
  ipv4: string;
  /** TFTP: the file, relative to the TFTP root when that is known, else as logged. */
  file: string;
  /** The rest, in dnsmasq's words ("no address available", "vendor class: PXEClient:Arch:00007…"). */
  detail: string;
  /** log-dhcp's transaction id, '' without log-dhcp. */
  xid: string;
}

export interface TraceEntry {
  at: string;
  source: 'dhcp' | 'tftp' | 'timeline';
  what: string;
}

export type VerdictCode =
  | 'no-dhcp'
  | 'dhcp-ignored'
  | 'dhcp-no-offer'
  | 'no-loader'
  | 'proxy-no-boot'
  | 'tftp-failed'
  | 'loader-refused'
  | 'no-kernel'
  | 'no-preseed'
  | 'preseed-no-installing'
  | 'install-stalled'
  | 'install-failed'
  | 'installed'
  | 'in-progress';

export interface BootVerdict {
  code: VerdictCode;
  /** One sentence: what was seen last. */
  summary: string;
  /** What to check, in plain words. */
  hint: string;
}

export interface UnknownMac {
  mac: string;
  firstAt: string;
  lastAt: string;
  /** DHCP lines logged for it. */
  count: number;
  /** The last thing dnsmasq logged for it. */
  last: string;
  /** log-dhcp's vendor class (PXEClient:Arch:…), '' when not logged. */
  vendorClass: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MAC = '[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}';
const IPV4 = '\\d{1,3}(?:\\.\\d{1,3}){3}';
/** dnsmasq's log-facility file and classic syslog: "Dec  6 15:14:14 [host ]dnsmasq-dhcp[123]: …". */
const CLASSIC_LINE = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (?:\S+ )?(dnsmasq(?:-dhcp|-tftp)?)\[\d+\]: ?(.*)$/;
/** rsyslog's high-precision format: "2026-12-06T15:14:14.123456+00:00 host dnsmasq-dhcp[123]: …". */
const ISO_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?:\S+ )?(dnsmasq(?:-dhcp|-tftp)?)\[\d+\]: ?(.*)$/;
/** What dnsmasq writes to stderr (--log-facility=-), as the journal stores it for the TFTP unit. */
const STDERR_PREFIX = /^dnsmasq(?:-dhcp|-tftp)?\[\d+\]: ?/;
const DHCP_MESSAGE = new RegExp(`^(DHCP[A-Z]+|BOOTP|PXE)\\((\\S+)\\) (?:(${IPV4}) )?(${MAC})(?: (.*))?$`);
const XID = /^(\d+) (.*)$/;
const CLIENT_INFO = /^(vendor class|user class|tags|bootfile name|client provides name): (.*)$/;
const TFTP_SENT = new RegExp(`^sent (.+) to (${IPV4})$`);
const TFTP_FAILED = new RegExp(`^(?:failed sending (.+) to (${IPV4})|file (.+) not found for (${IPV4})|error \\d+ (.*) received from (${IPV4}))$`);
const TFTP_ROOT = /^TFTP root is (\S+)/;

const lower = (s: string) => s.toLowerCase();

/**
 * The time of a classic syslog stamp, which has no year and is in local time: the year of
 * `now`, or the year before when that would be more than a day in the future (a log read
 * in January holding December's lines).
 */
export function selectSyslogTime(month: string, day: number, h: number, m: number, s: number, now: Date): Date {
  const mon = MONTHS.indexOf(month);
  const at = new Date(now.getFullYear(), mon, day, h, m, s);
  if (at.getTime() > now.getTime() + 86_400_000) at.setFullYear(now.getFullYear() - 1);
  return at;
}

/**
 * One dnsmasq message (without time stamp and "dnsmasq-dhcp[pid]: ") → an event, or null
 * for the lines that concern no client (start-up, "read hosts.d/…", "sent size: …").
 */
export function parseDnsmasqMessage(message: string, at: string, tftpRoot = ''): WireEvent | null {
  let text = message.replace(STDERR_PREFIX, '').trimEnd();
  let xid = '';
  const x = XID.exec(text);
  if (x) {
    xid = x[1]!;
    text = x[2]!;
  }
  const base = { at, mac: '', ipv4: '', file: '', detail: '', xid };
  const d = DHCP_MESSAGE.exec(text);
  if (d) {
    const [, type, iface, ip = '', mac, rest = ''] = d;
    const reason = rest.trim();
    const event: WireEvent = { ...base, source: 'dhcp', kind: 'other-dhcp', mac: lower(mac!), ipv4: ip, detail: `${type}(${iface})${reason ? ` ${reason}` : ''}` };
    if (type === 'PXE') event.kind = 'proxy';
    else if (type === 'DHCPDISCOVER') event.kind = reason === 'ignored' ? 'ignored' : reason ? 'no-offer' : 'discover';
    else if (type === 'DHCPOFFER') event.kind = 'offer';
    else if (type === 'DHCPREQUEST') event.kind = reason === 'ignored' ? 'ignored' : 'request';
    else if (type === 'DHCPACK' || type === 'BOOTP') event.kind = 'ack';
    else if (type === 'DHCPNAK') event.kind = 'nak';
    return event;
  }
  if (xid) {
    const c = CLIENT_INFO.exec(text);
    return c ? { ...base, source: 'dhcp', kind: 'client-info', detail: `${c[1]}: ${c[2]!.trim()}` } : null;
  }
  const relative = (file: string) => (tftpRoot && file.startsWith(`${tftpRoot}/`) ? file.slice(tftpRoot.length + 1) : file);
  const sent = TFTP_SENT.exec(text);
  if (sent) return { ...base, source: 'tftp', kind: 'tftp-sent', file: relative(sent[1]!), ipv4: sent[2]!, detail: 'sent' };
  const failed = TFTP_FAILED.exec(text);
  if (failed) {
    const file = failed[1] ?? failed[3] ?? '';
    const ip = failed[2] ?? failed[4] ?? failed[6] ?? '';
    const detail = failed[1] ? 'failed sending' : failed[3] ? 'not found' : `error from the client: ${failed[5]}`;
    return { ...base, source: 'tftp', kind: 'tftp-failed', file: relative(file), ipv4: ip, detail };
  }
  return null;
}

/** dnsmasq's TFTP root, from its "TFTP root is …" start-up line, so files read relative to it. */
function tftpRootOf(message: string): string | null {
  const m = TFTP_ROOT.exec(message.replace(STDERR_PREFIX, ''));
  return m ? m[1]!.replace(/\/$/, '') : null;
}

/**
 * log-dhcp writes the vendor class and tags of a transaction on lines of their own that
 * carry only its id: give them the MAC of the DISCOVER/REQUEST with the same id.
 */
function attachClientInfo(events: WireEvent[]): WireEvent[] {
  const macOf = new Map<string, string>();
  for (const e of events) if (e.xid && e.mac) macOf.set(e.xid, e.mac);
  return events.flatMap((e) => {
    if (e.kind !== 'client-info') return [e];
    const mac = macOf.get(e.xid);
    return mac ? [{ ...e, mac }] : [];
  });
}

/** A log file in dnsmasq's log-facility format, or syslog (classic or RFC 3339 stamps). */
export function parseDnsmasqLog(text: string, now: Date): WireEvent[] {
  const events: WireEvent[] = [];
  let root = '';
  for (const line of text.split('\n')) {
    let at: Date;
    let message: string;
    const c = CLASSIC_LINE.exec(line);
    const i = c ? null : ISO_LINE.exec(line);
    if (c) {
      at = selectSyslogTime(c[1]!, Number(c[2]), Number(c[3]), Number(c[4]), Number(c[5]), now);
      message = c[7]!;
    } else if (i) {
      at = new Date(i[1]!);
      message = i[3]!;
    } else continue;
    if (Number.isNaN(at.getTime())) continue;
    root = tftpRootOf(message) ?? root;
    const event = parseDnsmasqMessage(message, at.toISOString(), root);
    if (event) events.push(event);
  }
  return attachClientInfo(events);
}

/** `journalctl -o json` output: one JSON record a line; MESSAGE may be a byte array. */
export function parseJournal(text: string): WireEvent[] {
  const events: WireEvent[] = [];
  let root = '';
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const raw = record.MESSAGE;
    const message = typeof raw === 'string' ? raw : Array.isArray(raw) ? Buffer.from(raw as number[]).toString('utf8') : '';
    const micros = Number(record.__REALTIME_TIMESTAMP);
    if (!message || !Number.isFinite(micros)) continue;
    root = tftpRootOf(message) ?? root;
    const event = parseDnsmasqMessage(message, new Date(Math.floor(micros / 1000)).toISOString(), root);
    if (event) events.push(event);
  }
  return attachClientInfo(events);
}

/** What a TFTP file is in the boot chain, from its name. */
export function selectTftpFileRole(file: string): 'loader' | 'config' | 'kernel' | 'other' {
  const base = file.split('/').pop() ?? file;
  if (/(^|\/)images\//.test(file) || /^(linux|vmlinuz.*|initrd.*)$/.test(base)) return 'kernel';
  if (/(^|\/)(pxelinux\.cfg|grub)\//.test(file) || /\.(cfg|c32)$/.test(base)) return 'config';
  if (/\.(kpxe|efi|0|pxe)$/.test(base)) return 'loader';
  return 'other';
}

/** pxelinux asks for pxelinux.cfg/01-aa-bb-…: the MAC in a file name, when there is one. */
function macInFile(file: string): string {
  const m = /01-([0-9a-f]{2}(?:-[0-9a-f]{2}){5})/i.exec(file);
  return m ? lower(m[1]!.replace(/-/g, ':')) : '';
}

/**
 * The wire events that belong to `node`: DHCP lines with one of its MACs, and TFTP lines from
 * an address dnsmasq had acknowledged to one of its MACs (the newest ACK of that address at
 * the time wins, so a reused address follows its new owner), from its fixed address, or
 * naming its MAC in the file name.
 */
export function selectNodeWireEvents(node: Pick<Node, 'macs' | 'ipv4'>, wire: readonly WireEvent[]): WireEvent[] {
  const macs = new Set(node.macs.map(lower));
  const sorted = [...wire].sort((a, b) => a.at.localeCompare(b.at));
  const owner = new Map<string, string>();
  const out: WireEvent[] = [];
  for (const e of sorted) {
    if (e.source === 'dhcp') {
      if ((e.kind === 'ack' || e.kind === 'offer') && e.ipv4) owner.set(e.ipv4, e.mac);
      if (macs.has(e.mac)) out.push(e);
      continue;
    }
    const by = owner.get(e.ipv4);
    if ((by !== undefined && macs.has(by)) || (by === undefined && node.ipv4 !== '' && e.ipv4 === node.ipv4) || macs.has(macInFile(e.file))) out.push(e);
  }
  return out;
}

function describeWire(e: WireEvent): string {
  if (e.source === 'tftp') return `TFTP ${e.detail} ${e.file} (${e.ipv4})`;
  if (e.kind === 'client-info') return `DHCP ${e.detail}`;
  return `${e.detail} (${e.mac}${e.ipv4 ? `, ${e.ipv4}` : ''})`;
}

/** The node's trace: its wire events and its timeline, in time order (stable for equal times). */
export function selectBootTrace(node: Node, wire: readonly WireEvent[], since = ''): TraceEntry[] {
  const entries: TraceEntry[] = [
    ...selectNodeWireEvents(node, wire).map((e): TraceEntry => ({ at: e.at, source: e.source, what: describeWire(e) })),
    ...node.events.map((e): TraceEntry => ({ at: e.at, source: 'timeline', what: `${e.type}: ${e.message}` })),
  ];
  return entries.filter((e) => e.at >= since).sort((a, b) => a.at.localeCompare(b.at));
}

/** The timeline event that starts an attempt: the move into deploying or commissioning. */
function attemptStart(node: Node): string {
  let start = '';
  for (const e of node.events) if (e.type === 'status' && /→ (deploying|commissioning)\b/.test(e.message)) start = e.at;
  return start;
}

const ago = (now: Date, at: string) => now.getTime() - Date.parse(at);
const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/**
 * The verdict for one node: the furthest stage of the current attempt (since its last move
 * into deploying/commissioning, else everything given) and how long it has been quiet there,
 * against the thresholds above. The installer does DHCP again after the kernel, so the
 * furthest stage counts, not the newest line.
 */
export function selectBootVerdict(node: Node, wire: readonly WireEvent[], now: Date): BootVerdict {
  const start = attemptStart(node);
  // Syslog stamps have whole seconds: a line from the same second as the deploy counts.
  const wireStart = start ? new Date(Math.floor(Date.parse(start) / 1000) * 1000).toISOString() : '';
  const mine = selectNodeWireEvents(node, wire).filter((e) => e.at >= wireStart);
  const timeline = node.events.filter((e) => e.at >= start);
  const lastOf = <T extends { at: string }>(list: readonly T[]): T | undefined => list.reduce<T | undefined>((a, e) => (!a || e.at >= a.at ? e : a), undefined);
  const done = lastOf(timeline.filter((e) => e.type === 'installed' || e.type === 'deployed' || e.type === 'failed'));
  if (done?.type === 'failed') return { code: 'install-failed', summary: `the installer reported failure at ${done.at}: ${done.message}`, hint: 'read the installer\'s syslog (the node\'s console, or /var/log/installer on it)' };
  if (done) return { code: 'installed', summary: `${done.type} at ${done.at}`, hint: 'nothing to diagnose' };
  const installing = lastOf(timeline.filter((e) => e.type === 'installing'));
  if (installing) {
    const quiet = ago(now, installing.at);
    if (quiet > INSTALLING_TO_INSTALLED_MS) return { code: 'install-stalled', summary: `installing since ${installing.at}, no installed call-back within ${minutes(INSTALLING_TO_INSTALLED_MS)}`, hint: 'the install failed or hangs: watch the node\'s console (a question the preseed did not answer, a mirror it cannot reach, a full disk)' };
    return { code: 'in-progress', summary: `installing since ${installing.at} (${minutes(quiet)})`, hint: `the installed call-back is expected within ${minutes(INSTALLING_TO_INSTALLED_MS)}` };
  }
  const preseed = lastOf(timeline.filter((e) => e.type === 'preseed'));
  if (preseed) {
    const quiet = ago(now, preseed.at);
    if (quiet > PRESEED_TO_INSTALLING_MS) return { code: 'preseed-no-installing', summary: `preseed fetched at ${preseed.at}, no installing call-back within ${minutes(PRESEED_TO_INSTALLING_MS)}`, hint: 'the preseed\'s early_command failed: its wget of the installing URL did not reach the service (a proxy, a firewall, the token refused: see serve\'s log), or the installer stopped on the preseed itself' };
    return { code: 'in-progress', summary: `preseed fetched at ${preseed.at}`, hint: `the installing call-back is expected within ${minutes(PRESEED_TO_INSTALLING_MS)}` };
  }
  const tftpSent = mine.filter((e) => e.kind === 'tftp-sent');
  const kernel = lastOf([...timeline.filter((e) => e.type === 'netboot'), ...tftpSent.filter((e) => selectTftpFileRole(e.file) === 'kernel')]);
  if (kernel) {
    const quiet = ago(now, kernel.at);
    if (quiet > KERNEL_TO_PRESEED_MS) return { code: 'no-preseed', summary: `kernel or install boot script served at ${kernel.at}, no preseed request within ${minutes(KERNEL_TO_PRESEED_MS)}`, hint: 'the installer has no network or no DNS (no DHCP answer for it, no name server, or the preseed URL unreachable): watch the node\'s console' };
    return { code: 'in-progress', summary: `kernel or install boot script served at ${kernel.at}`, hint: `the preseed request is expected within ${minutes(KERNEL_TO_PRESEED_MS)}` };
  }
  const failed = lastOf(mine.filter((e) => e.kind === 'tftp-failed'));
  const loaders = tftpSent.filter((e) => selectTftpFileRole(e.file) === 'loader');
  const loader = lastOf(loaders);
  const config = lastOf(tftpSent.filter((e) => selectTftpFileRole(e.file) === 'config' || (loader && e.at >= loader.at && e.file !== loader.file)));
  if (failed && (!loader || failed.at >= loader.at) && (!config || failed.at >= config.at)) {
    const hint =
      failed.detail === 'not found'
        ? 'the file is missing from the TFTP root or unreadable by dnsmasq: uec-provisioning apply tftpd, and check the image is imported'
        : 'the transfer stopped half-way: the machine gave up or restarted (firmware with a small TFTP block size or timeout, a lossy link, an MTU problem)';
    return { code: 'tftp-failed', summary: `TFTP ${failed.detail}: ${failed.file} (${failed.at})`, hint };
  }
  if (config && loader && config.at >= loader.at) {
    const quiet = ago(now, config.at);
    if (quiet > CONFIG_TO_KERNEL_MS) return { code: 'no-kernel', summary: `the loader ran (it fetched ${config.file} at ${config.at}) but no kernel followed within ${minutes(CONFIG_TO_KERNEL_MS)}`, hint: 'check the node\'s boot file (pxelinux.cfg/GRUB: local boot while it should install?) and that its image is imported' };
    return { code: 'in-progress', summary: `the loader fetched ${config.file} at ${config.at}`, hint: `a kernel is expected within ${minutes(CONFIG_TO_KERNEL_MS)}` };
  }
  if (loader) {
    const arch = lastOf(mine.filter((e) => e.kind === 'client-info' && /^vendor class: PXEClient/.test(e.detail)));
    const archText = arch ? ` (its firmware said ${arch.detail})` : '';
    const quiet = ago(now, loader.at);
    const times = loaders.filter((e) => e.file === loader.file).length;
    if (quiet > LOADER_SILENCE_MS || times >= LOADER_RETRIES) {
      const seen = times >= LOADER_RETRIES ? `sent ${times} times, the last at ${loader.at}` : `sent at ${loader.at}, then nothing for ${minutes(quiet)}`;
      return { code: 'loader-refused', summary: `loader ${loader.file} ${seen}${archText}`, hint: 'the firmware refused or could not run it: Secure Boot on (use the shim loader: boot.uefi_loader=shim), or the wrong architecture (BIOS loader to a UEFI machine or the reverse: check the node\'s subarch and firmware mode)' };
    }
    return { code: 'in-progress', summary: `loader ${loader.file} sent at ${loader.at}${archText}`, hint: `the loader's next request is expected within ${minutes(LOADER_SILENCE_MS)}` };
  }
  const answer = lastOf(mine.filter((e) => e.kind === 'ack' || e.kind === 'offer' || e.kind === 'proxy'));
  if (answer) {
    const quiet = ago(now, answer.at);
    const proxyOnly = !mine.some((e) => e.kind === 'ack' || e.kind === 'offer');
    if (quiet <= ADDRESS_TO_LOADER_MS) return { code: 'in-progress', summary: `DHCP answered at ${answer.at}`, hint: `a TFTP or HTTP request is expected within ${minutes(ADDRESS_TO_LOADER_MS)}` };
    if (proxyOnly) return { code: 'proxy-no-boot', summary: `our proxy-DHCP gave boot information at ${answer.at}, but no TFTP request followed`, hint: 'in proxy mode the site\'s DHCP server gives the address: it may not have answered this machine (no free address, the MAC refused there), or TFTP (port 69) is blocked between them' };
    return { code: 'no-loader', summary: `got address ${answer.ipv4} at ${answer.at} but fetched no loader over TFTP`, hint: 'check that uec-provisioning-tftpd runs and the loader is in the TFTP root (uec-provisioning apply tftpd), and that nothing blocks UDP port 69' };
  }
  const ignored = lastOf(mine.filter((e) => e.kind === 'ignored'));
  if (ignored) return { code: 'dhcp-ignored', summary: `DHCPDISCOVER from ${ignored.mac} ignored by dnsmasq (last at ${ignored.at})`, hint: 'a dhcp-host line with "ignore" names this MAC (files under /var/lib/uec-provisioning/dhcpd/hosts.d/ or an admin\'s drop-in): remove it' };
  const refused = lastOf(mine.filter((e) => e.kind === 'no-offer'));
  if (refused) {
    const why = refused.detail.replace(/^\S+ /, '');
    const hint = /no address available/.test(why)
      ? 'the pool is full or has no range for this subnet: give the node a fixed address (nodes edit NODE --ipv4 ADDR), widen dhcp.range_start/range_end, or shorten dhcp.lease_time'
      : 'dnsmasq gave this reason; see docs/boot-diagnostics.md';
    return { code: 'dhcp-no-offer', summary: `DHCPDISCOVERs seen but no offer: ${why} (last at ${refused.at})`, hint };
  }
  const discover = lastOf(mine.filter((e) => e.source === 'dhcp'));
  if (discover) return { code: 'dhcp-no-offer', summary: `DHCP requests seen from ${discover.mac} but no offer logged (last at ${discover.at})`, hint: 'in proxy mode dnsmasq answers only PXE firmware (vendor class PXEClient) and the site\'s server gives the address; in full mode check dhcp.interface and the range' };
  return { code: 'no-dhcp', summary: `no DHCP seen from ${node.macs.join(', ')}${start ? ` since ${start}` : ''}`, hint: 'check the cable and VLAN, the firmware\'s boot order (network boot first, PXE enabled on this NIC), the MAC recorded for the node, and that dhcp.interface is the LAN the machine is on' };
}

/** MACs dnsmasq heard from that no node has, newest first. */
export function selectUnknownMacs(wire: readonly WireEvent[], nodes: readonly Pick<Node, 'macs'>[]): UnknownMac[] {
  const known = new Set(nodes.flatMap((n) => n.macs.map(lower)));
  const seen = new Map<string, UnknownMac>();
  for (const e of [...wire].sort((a, b) => a.at.localeCompare(b.at))) {
    if (e.source !== 'dhcp' || !e.mac || known.has(e.mac)) continue;
    const entry = seen.get(e.mac) ?? { mac: e.mac, firstAt: e.at, lastAt: e.at, count: 0, last: '', vendorClass: '' };
    if (e.kind === 'client-info') {
      if (e.detail.startsWith('vendor class: ')) entry.vendorClass = e.detail.slice('vendor class: '.length);
    } else {
      entry.count++;
      entry.lastAt = e.at;
      entry.last = describeWire(e);
    }
    seen.set(e.mac, entry);
  }
  return [...seen.values()].filter((u) => u.count > 0).sort((a, b) => b.lastAt.localeCompare(a.lastAt) || a.mac.localeCompare(b.mac));
}
