/**
 * The lab's pure parts (scripts/lab): its command line, the plan of its LAN and machines,
 * the BMC simulator's files, and reading a Wake-on-LAN magic packet. No I/O here; the
 * orchestration is scripts/lab.ts, the in-LAN agent scripts/lab-agent.ts.
 */

export type LabFirmware = 'bios' | 'uefi' | 'uefi-secure';

export interface LabArgs {
  mode: 'up' | 'down' | 'help';
  machines: number;
  proxy: boolean;
  ci: boolean;
  /** Loopback port of the web UI forward. */
  port: number;
}

export const LAB_PREFIX = 'uecl';
export const MAX_MACHINES = 6;

export const LAB_HELP = `Usage: scripts/lab [--machines N] [--proxy] [--port P] [--ci]
       scripts/lab --down
       scripts/lab --help

Builds a small LAN inside network namespaces of its own (uecl-*) and shows
uec-provisioning doing its job there: the .debs of this checkout installed by apt in a
Debian 12 container under systemd (configured by debconf answers and the CLI), a LAN
bridge, and N qemu machines with blank disks, powered off. Machines power on for real:
a lab agent on the LAN answers the product's Wake-on-LAN packets, and the second
machine has a BMC (Debian's ipmi_sim) that the product drives with ipmitool.
Nothing is attached to the host's interfaces; the web UI is forwarded to 127.0.0.1.

  --machines N  machines on the LAN, 1-${MAX_MACHINES} (default 3): BIOS, UEFI, UEFI Secure Boot, again
  --proxy       a plain dnsmasq plays the site's DHCP server; the appliance runs proxy-DHCP
                (no Secure Boot machine then: GRUB does not follow a proxy-DHCP answer)
  --port P      loopback port of the web UI (default 8480)
  --ci          unattended: enlist, deploy over the REST API, power on (WoL and IPMI),
                netboot, preseed, installing; checks each stage, tears down, exit 0 or 1
  --down        stop a running lab, or remove what a crashed one left (namespaces,
                VMs, the container, mounts)
  --help        this text

Ctrl-C tears everything down. Needs root. Time to the first machine installing: a few
minutes (README, "Lab").`;

export class LabUsageError extends Error {
  override name = 'LabUsageError';
}

/** argv (without node and the script) → what to do; throws LabUsageError naming the bad argument. */
export function parseLabArgs(argv: string[]): LabArgs {
  const args: LabArgs = { mode: 'up', machines: 3, proxy: false, ci: false, port: 8480 };
  const number = (name: string, value: string | undefined, min: number, max: number): number => {
    if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new LabUsageError(`${name} needs a number from ${min} to ${max}, not ${JSON.stringify(value ?? '')}`);
    }
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        args.mode = 'help';
        break;
      case '--down':
        args.mode = 'down';
        break;
      case '--machines':
        args.machines = number('--machines', value(), 1, MAX_MACHINES);
        break;
      case '--port':
        args.port = number('--port', value(), 1024, 65535);
        break;
      case '--proxy':
        args.proxy = true;
        break;
      case '--ci':
        args.ci = true;
        break;
      default:
        throw new LabUsageError(`unknown argument ${JSON.stringify(a)} (scripts/lab --help)`);
    }
  }
  return args;
}

export interface LabMachine {
  /** m1, m2, …: the lab's own label (the product names machines when they enlist). */
  label: string;
  firmware: LabFirmware;
  mac: string;
  tap: string;
  /** How the product powers it on: Wake-on-LAN, or IPMI through its BMC. */
  power: 'wol' | 'ipmi';
  /** The BMC's LAN address (ipmi_sim), for power 'ipmi'. */
  bmcAddress?: string;
  /** ipmi_sim's VM port that qemu's ipmi-bmc-extern connects to (loopback of the LAN namespace). */
  bmcVmPort?: number;
  /**
   * Whether it can enlist by netbooting: a Secure Boot machine cannot (the product's GRUB
   * chains to unsigned iPXE to enlist, which Secure Boot refuses), so the admin adds it by MAC.
   */
  enlists: boolean;
}

export interface LabPlan {
  namespaces: { lan: string; appliance: string; site?: string };
  subnet: string;
  applianceAddress: string;
  labAddress: string;
  siteAddress?: string;
  dhcpRange: [string, string];
  machines: LabMachine[];
  /** boot.uefi_loader: shim as soon as a Secure Boot machine is on the LAN (iPXE is unsigned). */
  uefiLoader: 'ipxe' | 'shim';
}

const FIRMWARES: LabFirmware[] = ['bios', 'uefi', 'uefi-secure'];

/** The LAN and its machines (pure): machine 2 has the BMC, the rest wake by Wake-on-LAN. */
export function planLab(args: Pick<LabArgs, 'machines' | 'proxy'>): LabPlan {
  const machines: LabMachine[] = [];
  for (let i = 0; i < args.machines; i++) {
    // Secure Boot needs shim → GRUB, and with a proxy-DHCP answer Debian's GRUB never asks the
    // appliance for its grub.cfg (seen in the lab: it stops after "Welcome to GRUB!"): with
    // --proxy the Secure Boot turns are plain UEFI (OVMF's PXE → iPXE, which follows the proxy).
    const turn = FIRMWARES[i % FIRMWARES.length]!;
    const firmware = args.proxy && turn === 'uefi-secure' ? 'uefi' : turn;
    const ipmi = i === 1;
    machines.push({
      label: `m${i + 1}`,
      firmware,
      mac: `52:54:00:67:00:${(0x11 + i).toString(16)}`,
      tap: `tap${i + 1}`,
      power: ipmi ? 'ipmi' : 'wol',
      ...(ipmi ? { bmcAddress: '10.67.0.3', bmcVmPort: 9002 } : {}),
      enlists: firmware !== 'uefi-secure',
    });
  }
  return {
    namespaces: { lan: `${LAB_PREFIX}-lan`, appliance: `${LAB_PREFIX}-appl`, ...(args.proxy ? { site: `${LAB_PREFIX}-site` } : {}) },
    subnet: '10.67.0.0/24',
    applianceAddress: '10.67.0.1',
    labAddress: '10.67.0.2',
    ...(args.proxy ? { siteAddress: '10.67.0.254' } : {}),
    dhcpRange: ['10.67.0.100', '10.67.0.150'],
    machines,
    uefiLoader: machines.some((m) => m.firmware === 'uefi-secure') ? 'shim' : 'ipxe',
  };
}

/** The debconf answers the appliance is installed with (as a preseeded install would). */
export function renderDebconf(plan: LabPlan, adminPassword: string): string {
  const mode = plan.siteAddress ? 'proxy' : 'full';
  return [
    'uec-provisioning-common uec-provisioning-common/interface select eth0',
    `uec-provisioning-dhcpd uec-provisioning-dhcpd/mode select ${mode}`,
    'uec-provisioning-dhcpd uec-provisioning-dhcpd/interface select eth0',
    `uec-provisioning-dhcpd uec-provisioning-dhcpd/range string ${plan.dhcpRange[0]}-${plan.dhcpRange[1]}`,
    `uec-provisioning-webui uec-provisioning-webui/admin-password password ${adminPassword}`,
    '',
  ].join('\n');
}

function quoteSim(value: string): string {
  if (/["\n\\]/.test(value)) throw new LabUsageError(`ipmi_sim cannot quote ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/**
 * ipmi_sim's lan.conf for one machine (pure): RMCP+ on the BMC address, one admin user, the
 * VM serial port on loopback for qemu's ipmi-bmc-extern, and the machine's qemu as its
 * startcmd, so a chassis power on starts the VM and power off stops it.
 */
export function renderIpmiSimConfig(machine: LabMachine, opts: { user: string; password: string; startCommand: string }): string {
  if (!machine.bmcAddress || !machine.bmcVmPort) throw new LabUsageError(`machine ${machine.label} has no BMC`);
  return [
    `# ipmi_sim for lab machine ${machine.label} (${machine.mac}), written by scripts/lab`,
    `name ${quoteSim(`lab-${machine.label}`)}`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${machine.bmcAddress} 623`,
    '    priv_limit admin',
    '    allowed_auths_callback none md2 md5 straight',
    '    allowed_auths_user none md2 md5 straight',
    '    allowed_auths_operator none md2 md5 straight',
    '    allowed_auths_admin none md2 md5 straight',
    `    guid ${machine.mac.replace(/:/g, '').padStart(32, 'a')}`,
    '  endlan',
    `  serial 15 127.0.0.1 ${machine.bmcVmPort} codec VM`,
    `  startcmd ${quoteSim(opts.startCommand)}`,
    '  startnow false',
    '  poweroff_wait 5',
    '  kill_wait 5',
    `  user 2 true ${quoteSim(opts.user)} ${quoteSim(opts.password)} admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
}

/** ipmi_sim's command file: one BMC with a system event log (pure). */
export function renderIpmiSimCommands(): string {
  return ['# the BMC ipmi_sim emulates, written by scripts/lab', 'mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n');
}

/** Quotes argv for a shell command line (ipmi_sim runs its startcmd through sh). */
export function renderShellCommand(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The MAC a Wake-on-LAN magic packet wakes (six 0xff, then the MAC 16 times; a trailing
 * SecureOn password is allowed), or undefined when the bytes are not one or name a
 * multicast address (pure).
 */
export function parseMagicPacket(packet: Buffer): string | undefined {
  if (packet.length !== 102 && packet.length !== 106 && packet.length !== 108) return undefined;
  if (!packet.subarray(0, 6).equals(Buffer.alloc(6, 0xff))) return undefined;
  const mac = packet.subarray(6, 12);
  // A NIC's own address is unicast: a multicast one (ff:ff:… too) wakes nothing.
  if ((mac[0]! & 1) === 1) return undefined;
  for (let i = 1; i < 16; i++) if (!packet.subarray(6 + i * 6, 12 + i * 6).equals(mac)) return undefined;
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface LabNodeEvent {
  at: string;
  type: string;
  message: string;
}

const STAGES = ['power', 'netboot', 'preseed', 'installing', 'installed', 'deployed', 'failed'];

/**
 * The deploy stages a node's timeline shows, in order of first appearance, counting only
 * events at or after `since` (ms; the deploy's time: an enlistment boot's events are not
 * part of the deploy) (pure).
 */
export function selectStages(events: LabNodeEvent[], since = 0): string[] {
  const stages: string[] = [];
  for (const e of events) if (Date.parse(e.at) >= since && STAGES.includes(e.type) && !stages.includes(e.type)) stages.push(e.type);
  return stages;
}

/** What /proc says of a process (comm, cmdline with spaces, the cgroup file's text). */
export interface ProcessFacts {
  comm: string;
  cmdline: string;
  cgroup: string;
}

/**
 * Pure: is this a process the lab started? Its qemu (the lab's MAC prefix), its BMC's ipmi_sim
 * and the site's dnsmasq (their files are under the run directory), the appliance's dnsmasq
 * (in the appliance container's cgroup, named after the lab) and the lab agent. Another job's
 * dnsmasq in a network namespace of its own, or another test's agent or shell, is not the lab's.
 */
export function selectLabProcess(p: ProcessFacts, runDir: string): boolean {
  if (p.comm.startsWith('qemu-system')) return p.cmdline.includes('52:54:00:67:');
  if (p.comm === 'ipmi_sim') return p.cmdline.includes(runDir);
  if (p.comm === 'dnsmasq') return p.cmdline.includes(runDir) || p.cgroup.includes(`/${LAB_PREFIX}-`);
  // The agent: node running lab-agent.ts on the lab's socket (not a test's agent, nor the
  // shell of a test helper whose command line names the file).
  return p.comm === 'node' && p.cmdline.includes('lab-agent.ts') && p.cmdline.includes(runDir);
}
