/**
 * The node context view: the one thing the region tells a provisioning server about a node,
 * so the provisioning server can render that node's boot script and preseed itself (design
 * note 000, option 1). Exactly the items the note lists, plus what the template lookup and
 * the role need. Region and provisioning server share this type and nothing else.
 *
 *   GET /api/v1/nodes/<system-id>/context     Authorization: Bearer <provisioning key>
 *   GET /api/v1/context?mac=<mac>             same, by MAC (404 when no node has it)
 */
import type { Architecture, Node, NodeStatus, Subarchitecture } from './node';
import type { ArchiveSettings } from '../core/archive';
import type { Role } from './roles';

/**
 * 2 added what an edge needs to render a node's DHCP reservation and per-node boot files, and
 * to judge who owns a deploy, from its cache with the region away: macs, ipv4, bound_address.
 */
export const CONTEXT_VERSION = 2;

export interface NodeContext {
  version: typeof CONTEXT_VERSION;
  system_id: string;
  hostname: string;
  /** Lower-case; the first is the boot interface (DHCP reservations, per-node boot files). */
  macs: string[];
  /** The fixed DHCP reservation, or '' for an address from the pool. */
  ipv4: string;
  /** The client address bound to the current deploy (node-address.ts), or ''. */
  bound_address: string;
  os: string;
  release: string;
  architecture: Architecture;
  subarchitecture: Subarchitecture;
  status: NodeStatus;
  /** True while commissioning: the preseed type differs. */
  commissioning: boolean;
  /** False after disable-netboot: boot the local disk. */
  netboot: boolean;
  /** The region's metadata base URL, e.g. http://10.0.0.1:5248/metadata/ */
  metadata_url: string;
  /** The node's secret; only ever sent to the node itself inside its preseed. */
  token: string;
  enlistment_url: string;
  disable_netboot_url: string;
  /** Status call-back base: append installing, installed, deployed or failed. */
  status_url: string;
  config: {
    commissioning_distro_series: string;
    main_archive: string;
    ports_archive: string;
    http_proxy: string;
    admin_user: string;
    /** SSH public keys installed for admin_user (public, not secret). */
    authorized_keys: string[];
  };
  role: {
    name: string;
    description: string;
    tasks: string[];
    packages: string[];
    preseed: string[];
    late_commands: string[];
  };
}

export interface RegionUrls {
  /** http://server:port, no trailing slash. */
  base: string;
}

export function metadataUrl(urls: RegionUrls): string {
  return `${urls.base}/metadata/`;
}

/** Pure: the context for one node from the region's data. */
export function buildNodeContext(
  node: Node,
  urls: RegionUrls,
  archive: ArchiveSettings,
  role: Role,
  packages: string[],
  settings: { commissioningRelease: string; adminUser: string; authorizedKeys: string[] },
): NodeContext {
  const nodeBase = `${urls.base}/metadata/latest/${node.systemId}`;
  return {
    version: CONTEXT_VERSION,
    system_id: node.systemId,
    hostname: node.hostname,
    macs: [...node.macs],
    ipv4: node.ipv4,
    bound_address: node.boundAddress ?? '',
    os: node.os,
    release: node.release,
    architecture: node.arch,
    subarchitecture: node.subarch,
    status: node.status,
    commissioning: node.status === 'commissioning',
    netboot: node.netboot,
    metadata_url: metadataUrl(urls),
    token: node.token,
    enlistment_url: `${urls.base}/metadata/enlist`,
    disable_netboot_url: `${nodeBase}/disable-netboot`,
    status_url: `${nodeBase}/status/`,
    config: {
      commissioning_distro_series: settings.commissioningRelease,
      main_archive: archive.main_archive,
      ports_archive: archive.ports_archive,
      http_proxy: archive.http_proxy,
      admin_user: settings.adminUser,
      authorized_keys: settings.authorizedKeys,
    },
    role: {
      name: role.name,
      description: role.description,
      tasks: role.tasks,
      packages,
      preseed: role.preseed,
      late_commands: role.lateCommands,
    },
  };
}

/**
 * Pure: the node record a context stands for, for what renders per node from a context alone
 * (an edge's DHCP reservations and per-node boot files). What the context does not carry
 * (the timeline, hardware, times) is empty.
 */
export function selectContextNode(context: NodeContext): Node {
  return {
    systemId: context.system_id,
    hostname: context.hostname,
    macs: [...context.macs],
    arch: context.architecture,
    subarch: context.subarchitecture,
    role: context.role.name,
    os: context.os,
    release: context.release,
    status: context.status,
    statusReason: '',
    statusChangedAt: '',
    ipv4: context.ipv4,
    token: context.token,
    netboot: context.netboot,
    ...(context.bound_address ? { boundAddress: context.bound_address } : {}),
    hardware: {},
    createdAt: '',
    updatedAt: '',
    events: [],
  };
}
