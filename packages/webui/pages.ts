/**
 * The pages: plain server-rendered HTML (every value escaped by html``), forms that post to
 * the same REST API the CLI uses, and one small script (static/app.js) for live updates.
 * Keyboard use: native links, buttons and form controls, a skip link, visible focus.
 * Narrow screens: one column, tables scroll inside their own box.
 */
import { NODE_STATUSES, type Node } from '../../src/contract/node';
import type { AuditEntry } from '../../src/core/audit';
import type { PublicEdge } from '../../src/region/edges';
import type { ApiToken } from './accounts';
import type { HealthItem, ImageEntry, Lease } from './health';
import { html, raw, type Html } from './html';
import { DEPLOY_STAGES, type NodeSummary } from './live';
import { IPMI_CIPHER_SUITES } from './power';

const B = '/uec-provisioning';

export interface PageUser {
  name: string;
  role: string;
  csrf: string;
}

const NAV: [string, string][] = [
  ['/', 'Dashboard'],
  ['/nodes', 'Nodes'],
  ['/deploy', 'Deploy'],
  ['/images', 'Images'],
  ['/settings', 'Settings'],
  ['/account', 'Account'],
  ['/audit', 'Audit'],
  ['/edges', 'Edges'],
];
/** Pages only admins may open, left out of the others' navigation. */
const ADMIN_PAGES = new Set(['/audit', '/edges']);

function layout(title: string, user: PageUser | null, flash: string, body: Html, active = ''): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="uecp-base" content="${B}">
${user ? html`<meta name="uecp-csrf" content="${user.csrf}">` : ''}
<title>${title} · uec-provisioning</title>
<link rel="stylesheet" href="${B}/static/app.css">
<script src="${B}/static/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">uec-provisioning</span>
${
  user
    ? html`<nav aria-label="Main"><ul>${NAV.filter(([href]) => !ADMIN_PAGES.has(href) || user.role === 'admin').map(([href, label]) => html`<li><a href="${B}${href}"${active === href ? raw(' aria-current="page"') : ''}>${label}</a></li>`)}</ul></nav>
<form method="post" action="${B}/logout" class="logout"><input type="hidden" name="_csrf" value="${user.csrf}"><span>${user.name} (${user.role})</span> <button type="submit">Log out</button></form>`
    : ''
}
</header>
<main id="main" tabindex="-1">
<h1>${title}</h1>
${flash ? html`<p class="flash" role="status">${flash}</p>` : ''}
<p id="live" class="live" role="status" aria-live="polite" hidden></p>
${body}
</main>
</body>
</html>
`.value;
}

function csrfField(user: PageUser): Html {
  return html`<input type="hidden" name="_csrf" value="${user.csrf}">`;
}

function backField(path: string): Html {
  return html`<input type="hidden" name="_back" value="${B}${path}">`;
}

function time(iso: string): Html {
  return iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>` : html``;
}

const isAdmin = (user: PageUser) => user.role === 'admin';

export function loginPage(message: string): string {
  return layout(
    'Log in',
    null,
    message,
    html`<form method="post" action="${B}/login" class="stack narrow">
<label for="user">User name</label><input id="user" name="user" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>`,
  );
}

export function errorPage(status: number, message: string): string {
  return layout(
    `Error ${status}`,
    null,
    '',
    html`<p class="error" role="alert">${message}</p><p><a href="${B}/" data-back>Go back</a> · <a href="${B}/">Dashboard</a></p>`,
  );
}

function statusBadge(status: string): Html {
  return html`<span class="status status-${status}" data-field="status">${status}</span>`;
}

export function dashboardPage(user: PageUser, flash: string, total: number, counts: Record<string, number>, health: HealthItem[]): string {
  return layout(
    'Dashboard',
    user,
    flash,
    html`<section aria-labelledby="h-nodes"><h2 id="h-nodes">Nodes (<span data-count="total">${total}</span>)</h2>
<ul class="counts">${NODE_STATUSES.map((s) => html`<li><a href="${B}/nodes?status=${s}">${statusBadge(s)} <strong data-count="${s}">${counts[s] ?? 0}</strong></a></li>`)}</ul>
</section>
<section aria-labelledby="h-health"><h2 id="h-health">Health</h2>
<div class="scroll"><table><thead><tr><th scope="col">Part</th><th scope="col">State</th><th scope="col">Detail</th></tr></thead><tbody>
${health.map((h) => html`<tr><th scope="row">${h.name}</th><td><span class="health health-${h.state}">${h.state === 'missing' ? 'not installed' : h.state}</span></td><td>${h.detail}</td></tr>`)}
</tbody></table></div></section>`,
    '/',
  );
}

function nodeRow(n: NodeSummary): Html {
  return html`<tr data-node="${n.systemId}"><td><a href="${B}/nodes/${n.systemId}">${n.hostname}</a></td><td>${n.macs.join(' ')}</td><td>${n.ipv4 || '—'}</td><td>${n.arch}</td><td>${n.role}</td><td>${statusBadge(n.status)}</td><td data-field="last">${time(n.lastEventAt)}</td></tr>`;
}

export function nodesPage(
  user: PageUser,
  flash: string,
  result: { total: number; matched: number; nodes: NodeSummary[]; page: number; per: number },
  query: URLSearchParams,
  roles: string[],
): string {
  const q = query.get('q') ?? '';
  const status = query.get('status') ?? '';
  const sort = query.get('sort') ?? 'hostname';
  const dir = query.get('dir') === 'desc' ? 'desc' : 'asc';
  const link = (changes: Record<string, string>) => {
    const p = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) p.set(k, v);
    return `${B}/nodes?${p.toString()}`;
  };
  const header = (key: string, label: string) => {
    const current = sort === key;
    const next = current && dir === 'asc' ? 'desc' : 'asc';
    return html`<th scope="col"${current ? raw(` aria-sort="${dir === 'asc' ? 'ascending' : 'descending'}"`) : ''}><a href="${link({ sort: key, dir: next, page: '1' })}">${label}${current ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</a></th>`;
  };
  const pages = Math.max(1, Math.ceil(result.matched / result.per));
  return layout(
    'Nodes',
    user,
    flash,
    html`<form method="get" action="${B}/nodes" class="filters" role="search">
<label for="q">Filter</label><input id="q" name="q" value="${q}" placeholder="hostname, system id, MAC, IP">
<label for="status">Status</label><select id="status" name="status"><option value="">any</option>${NODE_STATUSES.map((s) => html`<option${s === status ? raw(' selected') : ''}>${s}</option>`)}</select>
<input type="hidden" name="sort" value="${sort}"><input type="hidden" name="dir" value="${dir}">
<button type="submit">Apply</button>
</form>
<p><span data-count="matched">${result.matched}</span> of ${result.total} nodes${pages > 1 ? html`, page ${result.page} of ${pages}` : ''}. <span id="new-nodes" role="status"></span></p>
<div class="scroll"><table id="nodes-table" data-live="nodes"><thead><tr>${header('hostname', 'Hostname')}${header('mac', 'MACs')}${header('ipv4', 'IP')}${header('arch', 'Arch')}${header('role', 'Role')}${header('status', 'Status')}${header('last', 'Last event')}</tr></thead>
<tbody>${result.nodes.map(nodeRow)}</tbody></table></div>
${pages > 1 ? html`<nav aria-label="Pages" class="pager">${result.page > 1 ? html`<a href="${link({ page: String(result.page - 1) })}">Previous</a>` : ''} ${result.page < pages ? html`<a href="${link({ page: String(result.page + 1) })}">Next</a>` : ''}</nav>` : ''}
${
  isAdmin(user)
    ? html`<section aria-labelledby="h-add"><h2 id="h-add">Add a node</h2>
<form method="post" action="${B}/api/nodes" class="stack">${csrfField(user)}${backField('/nodes')}
<label for="a-host">Hostname</label><input id="a-host" name="hostname" required>
<label for="a-mac">MAC address(es)</label><input id="a-mac" name="mac" required placeholder="52:54:00:12:34:56">
<label for="a-arch">Architecture</label><select id="a-arch" name="arch"><option>amd64</option><option>arm64</option><option>i386</option></select>
<label for="a-role">Role</label><select id="a-role" name="role">${roles.map((r) => html`<option${r === 'server' ? raw(' selected') : ''}>${r}</option>`)}</select>
<label for="a-release">Release</label><input id="a-release" name="release" value="bookworm">
<label for="a-ip">Fixed IPv4 (optional)</label><input id="a-ip" name="ipv4">
<button type="submit">Add node</button>
</form></section>
<section aria-labelledby="h-csv"><h2 id="h-csv">Import from CSV</h2>
<form method="post" action="${B}/api/nodes/import" class="stack">${csrfField(user)}${backField('/nodes')}
<label for="csv">Rows: hostname,mac[,arch,role,release,ipv4] (all or nothing)</label>
<textarea id="csv" name="csv" rows="6" placeholder="node1,52:54:00:00:00:01,amd64,server,bookworm"></textarea>
<button type="submit">Import</button>
</form></section>`
    : ''
}`,
    '/nodes',
  );
}

function stageList(n: NodeSummary): Html {
  const order = DEPLOY_STAGES.filter((s) => s !== 'waiting' && s !== 'failed');
  const reached = n.stage === 'failed' ? -1 : order.indexOf(n.stage as (typeof order)[number]);
  return html`<ol class="stages" data-field="stages">${order.map((s, i) => html`<li class="${i <= reached ? 'done' : ''}">${s}</li>`)}${n.stage === 'failed' ? html`<li class="failed">failed: ${n.statusReason}</li>` : ''}</ol>`;
}

export function deployPage(user: PageUser, flash: string, nodes: NodeSummary[], roles: { name: string; releases: string[] }[], watch: string[]): string {
  const watched = nodes.filter((n) => watch.includes(n.systemId));
  const deployable = nodes.filter((n) => n.status === 'new' || n.status === 'ready');
  const active = nodes.filter((n) => n.status === 'deploying' || n.status === 'failed' || n.status === 'deployed');
  const progress = watched.length > 0 ? watched : active.slice(0, 200);
  return layout(
    'Deploy',
    user,
    flash,
    html`${
      isAdmin(user)
        ? html`<form method="post" action="${B}/api/deploy" class="stack">${csrfField(user)}${backField('/deploy')}
<fieldset><legend>Nodes (new or ready)</legend>
${deployable.length === 0 ? html`<p>No node is ready to deploy.</p>` : ''}
<div class="scroll checklist">${deployable.slice(0, 2000).map((n) => html`<label><input type="checkbox" name="nodes" value="${n.systemId}"> ${n.hostname} <small>${n.macs[0] ?? ''} · ${n.status}</small></label>`)}</div>
</fieldset>
<label for="d-role">Role</label><select id="d-role" name="role">${roles.map((r) => html`<option value="${r.name}"${r.name === 'server' ? raw(' selected') : ''}>${r.name} (${r.releases.join(', ')})</option>`)}</select>
<label for="d-release">Release</label><input id="d-release" name="release" value="bookworm" required>
<label class="inline"><input type="checkbox" name="power_on" value="on" checked> Power on (IPMI when the node has BMC details, else Wake-on-LAN)</label>
<button type="submit">Deploy</button>
</form>`
        : html`<p>Deploying needs the admin role.</p>`
    }
<section aria-labelledby="h-progress"><h2 id="h-progress">Progress</h2>
<div class="scroll"><table data-live="deploy"><thead><tr><th scope="col">Node</th><th scope="col">Status</th><th scope="col">Stages</th><th scope="col">Last event</th><th scope="col"><span class="sr">Actions</span></th></tr></thead><tbody>
${progress.map(
  (n) => html`<tr data-node="${n.systemId}"><td><a href="${B}/nodes/${n.systemId}">${n.hostname}</a></td><td>${statusBadge(n.status)}</td><td>${stageList(n)}</td><td data-field="lastEvent">${n.lastEvent}</td><td>${
    isAdmin(user) && n.status !== 'ready'
      ? html`<form method="post" action="${B}/api/nodes/${n.systemId}/release">${csrfField(user)}${backField(`/deploy?watch=${watch.join(',')}`)}<button type="submit">Release</button></form>`
      : ''
  }</td></tr>`,
)}
</tbody></table></div></section>`,
    '/deploy',
  );
}

/** The node page's cipher suite choices: auto (ipmitool asks the BMC) or a pinned suite. */
const CIPHER_SUITE_LABELS: Record<string, string> = {
  auto: 'auto (ipmitool asks the BMC: 17, else 3)',
  '3': '3 (SHA-1, AES-128)',
  '17': '17 (SHA-256, AES-128)',
};

export function nodePage(
  user: PageUser,
  flash: string,
  node: Node,
  summary: NodeSummary,
  preseed: { template: string; text: string } | { error: string },
  bmc: { address: string; user: string; cipherSuite?: number } | null,
  leases: Lease[] | null,
  boot: Html | null = null,
): string {
  const id = node.systemId;
  const hw = Object.entries(node.hardware).filter(([, v]) => v);
  return layout(
    node.hostname,
    user,
    flash,
    html`<div class="scroll" data-node="${id}"><table class="facts"><tbody>
<tr><th scope="row">System id</th><td>${id}</td></tr>
<tr><th scope="row">Status</th><td>${statusBadge(node.status)} <span data-field="reason">${node.statusReason}</span></td></tr>
<tr><th scope="row">MACs</th><td>${node.macs.join(', ')}</td></tr>
<tr><th scope="row">Fixed IPv4</th><td>${node.ipv4 || 'from the pool'}</td></tr>
<tr><th scope="row">Architecture</th><td>${node.arch} / ${node.subarch}</td></tr>
<tr><th scope="row">Role</th><td>${node.role} on ${node.os} ${node.release}</td></tr>
<tr><th scope="row">Netboot</th><td>${node.netboot ? 'on' : 'off (boots the local disk)'}</td></tr>
<tr><th scope="row">Deploy stage</th><td>${stageList(summary)}</td></tr>
${hw.map(([k, v]) => html`<tr><th scope="row">${k}</th><td>${v}</td></tr>`)}
</tbody></table></div>
${
  isAdmin(user)
    ? html`<section aria-labelledby="h-power"><h2 id="h-power">Power</h2>
<p>${bmc ? html`IPMI through BMC ${bmc.address} (user ${bmc.user}, cipher suite ${bmc.cipherSuite ?? 'auto'}).` : 'No BMC details: power on sends Wake-on-LAN on the provisioning interface.'}</p>
<div class="buttons">${(['on', 'off', 'cycle'] as const).map(
        (a) => html`<form method="post" action="${B}/api/nodes/${id}/power">${csrfField(user)}${backField(`/nodes/${id}`)}<input type="hidden" name="action" value="${a}"><button type="submit">Power ${a}</button></form>`,
      )}
<form method="post" action="${B}/api/nodes/${id}/release">${csrfField(user)}${backField(`/nodes/${id}`)}<button type="submit">Release</button></form>
<form method="post" action="${B}/api/nodes/${id}" data-confirm="Remove this node?">${csrfField(user)}<input type="hidden" name="_method" value="DELETE"><button type="submit" class="danger">Remove node</button></form></div>
<details><summary>BMC details (stored root-only)</summary>
<form method="post" action="${B}/api/nodes/${id}/bmc" class="stack">${csrfField(user)}${backField(`/nodes/${id}`)}
<label for="b-addr">BMC address</label><input id="b-addr" name="address" value="${bmc?.address ?? ''}" required>
<label for="b-user">BMC user</label><input id="b-user" name="user" value="${bmc?.user ?? ''}" required>
<label for="b-pass">BMC password</label><input id="b-pass" name="password" type="password" autocomplete="off" required>
<label for="b-suite">Cipher suite</label><select id="b-suite" name="cipher_suite">${(['auto', ...IPMI_CIPHER_SUITES.map(String)] as string[]).map(
        (v) => html`<option value="${v}"${v === String(bmc?.cipherSuite ?? 'auto') ? raw(' selected') : ''}>${CIPHER_SUITE_LABELS[v] ?? v}</option>`,
      )}</select>
<button type="submit">Save BMC details</button></form></details></section>`
    : ''
}
<section aria-labelledby="h-lease"><h2 id="h-lease">DHCP lease</h2>
${leases === null ? html`<p>No DHCP lease file (uec-provisioning-dhcpd not installed, or no lease yet).</p>` : leases.length === 0 ? html`<p>No lease for this node's MACs.</p>` : html`<ul>${leases.map((l) => html`<li>${l.ipv4} for ${l.mac}, host ${l.hostname}, expires ${l.expires}</li>`)}</ul>`}
</section>
${boot}
<section aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>
<ol class="timeline" reversed data-field="timeline">${[...node.events].reverse().map((e) => html`<li>${time(e.at)} <strong>${e.type}</strong> ${e.message}</li>`)}</ol>
</section>
<section aria-labelledby="h-preseed"><h2 id="h-preseed">Preseed preview</h2>
${'error' in preseed ? html`<p class="error">Cannot render: ${preseed.error}</p>` : html`<p>From ${preseed.template}; the node's token is masked.</p><pre class="preseed" tabindex="0">${preseed.text}</pre>`}
</section>`,
    '/nodes',
  );
}

export function imagesPage(user: PageUser, flash: string, images: ImageEntry[], importAvailable: boolean): string {
  return layout(
    'Images',
    user,
    flash,
    html`${images.length === 0 ? html`<p>No netboot image imported.</p>` : ''}
<div class="scroll"><table><thead><tr><th scope="col">OS</th><th scope="col">Release</th><th scope="col">Arch</th><th scope="col">Files</th><th scope="col">Size</th><th scope="col">Imported</th></tr></thead><tbody>
${images.map((i) => html`<tr><td>${i.os}</td><td>${i.release}</td><td>${i.arch}</td><td>${i.files.join(', ')}</td><td>${(i.bytes / 1048576).toFixed(1)} MiB</td><td>${time(i.importedAt)}</td></tr>`)}
</tbody></table></div>
${
  importAvailable && isAdmin(user)
    ? html`<form method="post" action="${B}/api/images/import" class="stack">${csrfField(user)}${backField('/images')}
<label for="i-args">Arguments to <code>uec-provisioning images import</code></label><input id="i-args" name="args" placeholder="see uec-provisioning images import --help">
<button type="submit">Import</button></form>`
    : importAvailable
      ? ''
      : html`<p>Importing images needs uec-provisioning-tftpd.</p>`
}`,
    '/images',
  );
}

export function settingsPage(user: PageUser, flash: string, rows: { key: string; value: string; origin: string; description: string; values: string[] | null; type: string }[]): string {
  return layout(
    'Settings',
    user,
    flash,
    html`<p>Effective configuration and the file each value comes from. Changes go to the managed drop-in /etc/uec-provisioning/conf.d/50-managed.conf, validated like <code>uec-provisioning config set</code>.</p>
<div class="scroll"><table class="settings"><thead><tr><th scope="col">Key</th><th scope="col">Value</th><th scope="col">From</th></tr></thead><tbody>
${rows.map((r) => {
  const id = `s-${r.key.replace(/[^a-z0-9]/g, '-')}`;
  const control =
    r.values !== null
      ? html`<select id="${id}" name="value">${r.values.map((v) => html`<option${v === r.value ? raw(' selected') : ''}>${v}</option>`)}</select>`
      : r.type === 'boolean'
        ? html`<select id="${id}" name="value"><option${r.value === 'true' ? raw(' selected') : ''}>true</option><option${r.value === 'false' ? raw(' selected') : ''}>false</option></select>`
        : html`<input id="${id}" name="value" value="${r.value}">`;
  return html`<tr><th scope="row"><label for="${id}">${r.key}</label><br><small>${r.description}</small></th><td>${
    isAdmin(user) ? html`<form method="post" action="${B}/api/config" class="row">${csrfField(user)}${backField('/settings')}<input type="hidden" name="key" value="${r.key}">${control}<button type="submit">Set</button></form>` : html`<code id="${id}">${r.value}</code>`
  }</td><td>${r.origin}</td></tr>`;
})}
</tbody></table></div>`,
    '/settings',
  );
}

export function accountPage(user: PageUser, flash: string, tokens: Omit<ApiToken, 'digest'>[], users: { name: string; role: string }[]): string {
  return layout(
    'Account',
    user,
    flash,
    html`<section aria-labelledby="h-pw"><h2 id="h-pw">Change password</h2>
<form method="post" action="${B}/api/account/password" class="stack narrow">${csrfField(user)}${backField('/account')}
<label for="p-cur">Current password</label><input id="p-cur" name="current" type="password" autocomplete="current-password" required>
<label for="p-new">New password (8 characters or more)</label><input id="p-new" name="new" type="password" autocomplete="new-password" minlength="8" required>
<label for="p-conf">New password again</label><input id="p-conf" name="confirm" type="password" autocomplete="new-password" minlength="8" required>
<button type="submit">Change password</button>
<p><small>Every other session of yours ends.</small></p>
</form></section>
<section aria-labelledby="h-tok"><h2 id="h-tok">API tokens</h2>
<p>For scripts and <code>uec-provisioning webui api</code> against this server: send <code>Authorization: Bearer TOKEN</code>.</p>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">User</th><th scope="col">Created</th><th scope="col"><span class="sr">Actions</span></th></tr></thead><tbody>
${tokens.map((t) => html`<tr><td>${t.name}</td><td>${t.user}</td><td>${time(t.createdAt)}</td><td><form method="post" action="${B}/api/tokens/${t.id}">${csrfField(user)}${backField('/account')}<input type="hidden" name="_method" value="DELETE"><button type="submit">Revoke</button></form></td></tr>`)}
</tbody></table></div>
<form method="post" action="${B}/api/tokens" class="row">${csrfField(user)}<label for="t-name">Token name</label><input id="t-name" name="name" required><button type="submit">Create token</button></form>
</section>
${
  isAdmin(user)
    ? html`<section aria-labelledby="h-users"><h2 id="h-users">Users</h2>
<ul>${users.map((u) => html`<li>${u.name} (${u.role})</li>`)}</ul>
<form method="post" action="${B}/api/users" class="stack narrow">${csrfField(user)}${backField('/account')}
<label for="u-name">User name</label><input id="u-name" name="name" required>
<label for="u-role">Role</label><select id="u-role" name="role"><option>viewer</option><option>admin</option></select>
<label for="u-pass">Password</label><input id="u-pass" name="password" type="password" autocomplete="new-password" minlength="8" required>
<button type="submit">Create user</button></form></section>`
    : ''
}`,
    '/account',
  );
}

export function tokenCreatedPage(user: PageUser, name: string, secret: string): string {
  return layout(
    'API token created',
    user,
    '',
    html`<p>Token <strong>${name}</strong>. Copy it now: it is shown only once.</p><pre class="secret" tabindex="0">${secret}</pre><p><a href="${B}/account">Back to the account page</a></p>`,
    '/account',
  );
}

export interface AuditView {
  entries: AuditEntry[];
  /** Entries that matched the filter (all pages). */
  matched: number;
  page: number;
  pages: number;
  /** The log was larger than what was read: only its last readLimit bytes are shown. */
  partial: boolean;
  readLimit: number;
}

function actorText(actor: AuditEntry['actor']): string {
  switch (actor.kind) {
    case 'unix':
      return `${actor.user} (unix)`;
    case 'web':
      return `${actor.user} (web)`;
    case 'debconf':
      return `${actor.package} (debconf)`;
    case 'token':
      return `${actor.user} (API token ${actor.name ? `${actor.name}, ` : ''}${actor.token})`;
  }
}

function changeList(changes: AuditEntry['changes']): Html {
  const entries = Object.entries(changes);
  if (entries.length === 0) return html``;
  return html`<ul class="changes">${entries.map(([k, c]) => html`<li><code>${k}</code>: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}</li>`)}</ul>`;
}

/** The audit log, newest first: filters, one page of entries, and what part of the file was read. */
export function auditPage(user: PageUser, flash: string, view: AuditView, query: URLSearchParams): string {
  const value = (k: string) => query.get(k) ?? '';
  const link = (page: number) => {
    const p = new URLSearchParams(query);
    p.set('page', String(page));
    return `${B}/audit?${p.toString()}`;
  };
  const mib = Math.round(view.readLimit / 1024 / 1024);
  return layout(
    'Audit',
    user,
    flash,
    html`<p>Every change from the command line, package configuration (debconf), this web UI and its API, newest first. Secrets are never recorded. The page reads at most the last ${mib} MiB of <code>/var/log/uec-provisioning/audit.log</code>${view.partial ? html` (<strong>the log is larger: older entries are not shown here</strong>; read the file itself)` : ''}; rotated copies (audit.log.1, audit.log.2.gz…) are not shown.</p>
<form method="get" action="${B}/audit" class="filters" role="search">
<label for="f-actor">Actor</label><input id="f-actor" name="actor" value="${value('actor')}" placeholder="admin, web:admin, debconf">
<label for="f-action">Action</label><input id="f-action" name="action" value="${value('action')}" placeholder="node.add, node, config">
<label for="f-target">Target</label><input id="f-target" name="target" value="${value('target')}" placeholder="hostname, system id, key, user">
<button type="submit">Apply</button>
</form>
<p><span data-count="matched">${view.matched}</span> matching entries${view.pages > 1 ? html`, page ${view.page} of ${view.pages}` : ''}.</p>
<div class="scroll"><table id="audit-table"><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Changes</th></tr></thead>
<tbody>${view.entries.map(
      (e) => html`<tr><td>${time(e.time)}</td><td>${actorText(e.actor)}</td><td><code>${e.action}</code></td><td>${Object.entries(e.target).map(([k, v]) => html`<span class="kv">${k}=${v}</span> `)}</td><td>${changeList(e.changes)}${e.truncated ? ' (shortened)' : ''}</td></tr>`,
    )}</tbody></table></div>
${view.pages > 1 ? html`<nav aria-label="Pages" class="pager">${view.page > 1 ? html`<a href="${link(view.page - 1)}">Newer</a>` : ''} ${view.page < view.pages ? html`<a href="${link(view.page + 1)}">Older</a>` : ''}</nav>` : ''}`,
    '/audit',
  );
}

/** One edge's poll of the region's change feed, as the region process reports it (edges.md, "Last contact and lag"). */
export interface EdgeFollower {
  name: string;
  address: string;
  lastContact: string;
  behind: number;
  lagSeconds: number;
}

/** A registered edge with what the feed knows of it (null: it has not polled since the region started). */
export type EdgeRow = PublicEdge & { feed: EdgeFollower | null };

export interface EdgesView {
  edges: EdgeRow[];
  /** Followers that are no registered edge: edges still on the shared key (named by their host). */
  sharedKey: EdgeFollower[];
}

/** The followers in the region's answer (pure): well-formed entries only, anything else dropped. */
export function selectEdgeFollowers(value: unknown): EdgeFollower[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((v: Record<string, unknown>) =>
    v && typeof v.name === 'string' && typeof v.address === 'string' && typeof v.last_contact === 'string' && Number.isFinite(v.behind) && Number.isFinite(v.lag_seconds)
      ? [{ name: v.name, address: v.address, lastContact: v.last_contact, behind: Number(v.behind), lagSeconds: Number(v.lag_seconds) }]
      : [],
  );
}

/**
 * The registry joined with the feed's followers by name (pure): the latest last contact of the
 * two (the registry writes it once a minute, the feed at every poll), the lag of the most recent
 * poll, and the followers that are not registered (the shared key).
 */
export function selectEdgesView(edges: readonly PublicEdge[], followers: readonly EdgeFollower[]): EdgesView {
  const latest = new Map<string, EdgeFollower>();
  for (const f of followers) {
    const seen = latest.get(f.name);
    if (!seen || f.lastContact > seen.lastContact) latest.set(f.name, f);
  }
  const names = new Set(edges.map((e) => e.name));
  return {
    edges: edges.map((e) => {
      const feed = latest.get(e.name) ?? null;
      const lastContact = feed && !e.revoked && feed.lastContact > e.lastContact ? feed.lastContact : e.lastContact;
      return { ...e, lastContact, feed: e.revoked ? null : feed };
    }),
    sharedKey: followers.filter((f) => !names.has(f.name)),
  };
}

function lagText(feed: EdgeFollower | null): string {
  if (!feed) return 'unknown';
  return feed.behind === 0 ? 'up to date' : `${feed.behind} change${feed.behind === 1 ? '' : 's'} behind, ${feed.lagSeconds} s`;
}

/**
 * The edges registered with the region (admins): subnets, last contact, lag behind the change
 * feed (when the region process reports it), live or revoked; a form to register one (its key is
 * shown once) and a Revoke button; below, edges that still follow the feed with the shared key.
 */
export function edgesPage(user: PageUser, flash: string, view: EdgesView): string {
  return layout(
    'Edges',
    user,
    flash,
    html`<p>Provisioning servers on other hosts, each with its own key. A revoked edge is refused at its next request. On the command line: <code>uec-provisioning edges list|add|revoke|assign</code>.</p>
<div class="scroll"><table id="edges-table"><thead><tr><th scope="col">Name</th><th scope="col">Subnets</th><th scope="col">Last contact (UTC)</th><th scope="col">Lag</th><th scope="col">State</th><th scope="col"><span class="sr">Actions</span></th></tr></thead><tbody>
${view.edges.map(
  (e) =>
    html`<tr><th scope="row">${e.name}</th><td>${e.subnets.join(', ')}</td><td>${e.lastContact ? time(e.lastContact) : 'never'}</td><td>${e.revoked ? '' : lagText(e.feed)}</td><td>${e.revoked ? html`revoked ${time(e.revokedAt)}` : 'live'}</td><td>${
      e.revoked
        ? ''
        : html`<form method="post" action="${B}/api/edges/${e.name}">${csrfField(user)}${backField('/edges')}<input type="hidden" name="_method" value="DELETE"><button type="submit">Revoke</button></form>`
    }</td></tr>`,
)}
</tbody></table></div>
${
  view.sharedKey.length > 0
    ? html`<section aria-labelledby="h-shared"><h2 id="h-shared">Following with the shared key</h2>
<p>These provisioning servers still use the shared key (named by their host): register each and give it its own key (docs/http-api.md, migration).</p>
<div class="scroll"><table id="shared-key-table"><thead><tr><th scope="col">Host</th><th scope="col">Address</th><th scope="col">Last contact (UTC)</th><th scope="col">Lag</th></tr></thead><tbody>
${view.sharedKey.map((f) => html`<tr><th scope="row">${f.name}</th><td>${f.address}</td><td>${time(f.lastContact)}</td><td>${lagText(f)}</td></tr>`)}
</tbody></table></div></section>`
    : ''
}
<section aria-labelledby="h-add-edge"><h2 id="h-add-edge">Register an edge</h2>
<form method="post" action="${B}/api/edges" class="stack narrow">${csrfField(user)}${backField('/edges')}
<label for="e-name">Name</label><input id="e-name" name="name" pattern="[a-z][a-z0-9-]{0,62}" required>
<label for="e-subnets">Subnets it serves (CIDR, separated by spaces or commas)</label><input id="e-subnets" name="subnet" placeholder="10.1.0.0/16" required>
<button type="submit">Register edge</button></form></section>`,
    '/edges',
  );
}

export function edgeCreatedPage(user: PageUser, name: string, key: string): string {
  return layout(
    'Edge registered',
    user,
    '',
    html`<p>Edge <strong>${name}</strong>. Copy its key now: it is shown only once. On the edge, write it to a file only root can read (<code>umask 077; cat &gt; /var/lib/uec-provisioning/secrets/edge.key</code>) and set <code>provisioning.edge_key_file</code> to that file.</p><pre class="secret" tabindex="0">${key}</pre><p><a href="${B}/edges">Back to the edges</a></p>`,
    '/edges',
  );
}
