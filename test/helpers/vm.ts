/**
 * Boot a throw-away qemu VM inside a test network namespace, attached to a tap device there,
 * with the iPXE option ROM from ipxe-qemu (BIOS) or OVMF (UEFI). Nothing it sends can leave
 * the namespace (see netns.ts). The serial console goes to a file the test can read.
 *
 * Acceleration: KVM only when it really works here (NETBOOT-NOTES: this machine's /dev/kvm is
 * a paravirtual variant that hangs stock kernels), else TCG with two threads.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NetnsProcess, TestNetwork } from './netns';

export type Firmware = 'bios' | 'uefi' | 'uefi-secure';

export interface VmOptions {
  ns: string;
  tap: string;
  mac: string;
  firmware: Firmware;
  /** Directory for the serial log and the per-run UEFI variable store. */
  workDir: string;
  /** No NIC option ROM: the firmware's own PXE (OVMF), as on real UEFI hardware. */
  noOptionRom?: boolean;
  memoryMiB?: number;
}

export interface Vm {
  process: NetnsProcess;
  serialLog: string;
  /** The serial console so far. */
  serial(): string;
  /** Resolves when the serial console matches; rejects on exit or timeout. */
  waitForSerial(pattern: RegExp, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Why VM tests cannot run here, or false. */
export function vmUnavailableReason(): string | false {
  if (!fs.existsSync('/usr/bin/qemu-system-x86_64')) return 'qemu-system-x86 is not installed';
  if (!fs.existsSync('/usr/lib/ipxe/qemu/efi-virtio.rom') && !fs.existsSync('/usr/lib/ipxe/qemu/pxe-virtio.rom')) return 'ipxe-qemu is not installed';
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return false;
}

/**
 * TCG unless told otherwise: the only KVM on these machines is PVM (kvm_pvm), under which
 * stock Debian kernels hang. UEC_TEST_ACCEL=kvm forces KVM where it is known to work.
 */
export function selectAccelerator(env: NodeJS.ProcessEnv = process.env): string[] {
  const pvm = fs.existsSync('/sys/module/kvm_pvm');
  if (env.UEC_TEST_ACCEL === 'kvm' && fs.existsSync('/dev/kvm') && !pvm) return ['-accel', 'kvm', '-cpu', 'host'];
  return ['-accel', 'tcg,thread=multi'];
}

/** Extra qemu parts for machines outside a test: a blank disk and a BMC (scripts/lab). */
export interface QemuExtras {
  /** A raw disk image attached as virtio (blank: the firmware skips it and netboots). */
  disk?: string;
  /** An external BMC (ipmi_sim's VM serial port) reached over TCP: ipmi-bmc-extern + KCS. */
  bmc?: { host: string; port: number };
  /** qemu writes its pid here. */
  pidFile?: string;
  /** Keep an existing UEFI variable store (a machine's NVRAM across power cycles). */
  keepVars?: boolean;
}

/**
 * The qemu command line of a VM (pure but for the UEFI variable store, which it copies into
 * workDir): the same for the tests (startVm) and the lab.
 */
export function buildQemuArgv(options: Omit<VmOptions, 'ns'>, serialLog: string, extras: QemuExtras = {}): string[] {
  const argv = [
    'qemu-system-x86_64',
    ...selectAccelerator(),
    '-smp',
    '2',
    '-m',
    String(options.memoryMiB ?? 1024),
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    `file:${serialLog}`,
    '-no-reboot',
    '-netdev',
    `tap,id=n0,ifname=${options.tap},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=n0,mac=${options.mac}${options.noOptionRom ? ',romfile=' : ''}`,
  ];
  if (options.firmware === 'bios') {
    argv.push('-boot', 'n');
  } else {
    const secure = options.firmware === 'uefi-secure';
    const code = secure ? '/usr/share/OVMF/OVMF_CODE_4M.ms.fd' : '/usr/share/OVMF/OVMF_CODE_4M.fd';
    const varsTemplate = secure ? '/usr/share/OVMF/OVMF_VARS_4M.ms.fd' : '/usr/share/OVMF/OVMF_VARS_4M.fd';
    const vars = path.join(options.workDir, `OVMF_VARS-${options.mac.replace(/:/g, '')}.fd`);
    if (!extras.keepVars || !fs.existsSync(vars)) fs.copyFileSync(varsTemplate, vars);
    argv.push('-machine', secure ? 'q35,smm=on' : 'q35');
    if (secure) argv.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    argv.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${code}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  if (extras.disk) argv.push('-drive', `file=${extras.disk},if=virtio,format=raw`);
  if (extras.bmc) {
    argv.push(
      '-chardev',
      `socket,id=ipmi0,host=${extras.bmc.host},port=${extras.bmc.port},reconnect=2`,
      '-device',
      'ipmi-bmc-extern,chardev=ipmi0,id=bmc0',
      '-device',
      'isa-ipmi-kcs,bmc=bmc0',
    );
  }
  if (extras.pidFile) argv.push('-pidfile', extras.pidFile);
  return argv;
}

export function startVm(net: TestNetwork, options: VmOptions): Vm {
  const serialLog = path.join(options.workDir, `serial-${options.mac.replace(/:/g, '')}.log`);
  fs.writeFileSync(serialLog, '');
  const argv = buildQemuArgv(options, serialLog);
  const proc = net.spawn(options.ns, argv);
  const serial = () => fs.readFileSync(serialLog, 'utf8');
  return {
    process: proc,
    serialLog,
    serial,
    waitForSerial(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      return new Promise((resolve, reject) => {
        let exited = false;
        void proc.exited.then(() => (exited = true));
        const poll = () => {
          if (pattern.test(serial())) return resolve();
          if (exited) return reject(new Error(`qemu exited before the console showed ${pattern}: ${proc.stderr().slice(-500)}`));
          if (Date.now() > deadline) return reject(new Error(`the console did not show ${pattern} within ${timeoutMs} ms`));
          setTimeout(poll, 500);
        };
        poll();
      });
    },
    stop: () => proc.stop(1000),
  };
}

/**
 * One VM-heavy test file at a time: the netboot e2e tests each boot several TCG VMs, and two
 * of them side by side on two cores starve each other's guests past their deadlines. Holds
 * an flock(1) lock until the test ends (the holder is a `sleep` that dies with this process:
 * setpriv --pdeathsig); other test files keep running beside it. Resolves once held.
 */
export async function holdVmLane(t: { teardown(fn: () => unknown): void }, lockFile = '/run/lock/uec-provisioning-tests-vm.lock'): Promise<void> {
  const holder = spawn('setpriv', ['--pdeathsig', 'KILL', 'flock', '--no-fork', lockFile, 'sh', '-c', 'echo held; exec sleep infinity'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void holder.kill('SIGKILL'));
  process.once('exit', () => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.on('data', (d: Buffer) => {
      if (d.toString('utf8').includes('held')) resolve();
    });
    holder.once('exit', (code) => reject(new Error(`flock ${lockFile} exited ${code} before holding the lock`)));
  });
}
