/**
 * Each rendered file is checked by the real program that will read it, before anything is
 * written: dnsmasq --test, apache2 -t, debconf-set-selections -c. The candidate goes to a
 * private temp directory; the target is untouched until every file of the apply has passed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UecError, describeError } from './errors';
import { runCommand } from './run-command';

export type ValidatorName = 'dnsmasq' | 'apache2' | 'debconf' | 'apt-cacher-ng';

export interface ValidationOutcome {
  ok: boolean;
  /** The tool's complaint, first meaningful line. */
  message: string;
}

export type Validator = (candidatePath: string) => Promise<ValidationOutcome>;

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !/^AH00558/.test(l)) ?? ''
  );
}

function findProgram(names: string[]): string | null {
  for (const name of names) {
    const candidates = name.includes('/') ? [name] : ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, name));
    for (const c of candidates) if (fs.existsSync(c)) return c;
  }
  return null;
}

function requireProgram(validator: ValidatorName, names: string[], pkg: string): string {
  const program = findProgram(names);
  if (!program) {
    throw new UecError('VALIDATOR_MISSING', `cannot validate a ${validator} file: ${names[0]} is not installed (install ${pkg})`);
  }
  return program;
}

/** dnsmasq parses the file and exits; it binds nothing and sends nothing with --test. */
export const validateDnsmasq: Validator = async (candidate) => {
  const program = requireProgram('dnsmasq', ['dnsmasq'], 'dnsmasq-base');
  const result = await runCommand(program, ['--test', `--conf-file=${candidate}`]);
  const output = `${result.stderr}\n${result.stdout}`;
  return { ok: result.code === 0, message: firstLine(output.replace(/dnsmasq: syntax check OK\.?/, '')) || `exit ${result.code}` };
};

/** Modules the checked drop-ins may use, loaded for the check when not enabled: [id, file]. */
const APACHE_CHECK_MODULES: ReadonlyArray<[string, string]> = [
  // One MPM must be loaded: event (apache2's default) unless another is enabled.
  ['mpm_event_module', 'mod_mpm_event.so'],
  ['authz_core_module', 'mod_authz_core.so'],
  ['authz_host_module', 'mod_authz_host.so'],
  ['alias_module', 'mod_alias.so'],
  ['dir_module', 'mod_dir.so'],
  ['mime_module', 'mod_mime.so'],
  ['autoindex_module', 'mod_autoindex.so'],
  ['proxy_module', 'mod_proxy.so'],
  ['proxy_http_module', 'mod_proxy_http.so'],
  ['headers_module', 'mod_headers.so'],
];

const APACHE_MPMS = ['mpm_event_module', 'mpm_worker_module', 'mpm_prefork_module'];

/** `LoadModule` wrapped in IfModule tests, so an enabled module (or another MPM) wins. */
function loadUnlessLoaded(name: string, file: string): string {
  const unless = name.startsWith('mpm_') ? APACHE_MPMS : [name];
  return [...unless.map((m) => `<IfModule !${m}>`), `LoadModule ${name} /usr/lib/apache2/modules/${file}`, ...unless.map(() => '</IfModule>')].join('\n');
}

/**
 * apache2 checks a small wrapper config that loads the installed modules and includes the
 * candidate, the way conf-enabled/ would. Run files go to a temp dir so nothing of the
 * running server is touched.
 */
export const validateApache2: Validator = async (candidate) => {
  const program = requireProgram('apache2', ['apache2'], 'apache2');
  const scratch = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'uec-apache-check-'));
  try {
    const wrapper = path.join(scratch, 'apache2.conf');
    await fs.promises.writeFile(
      wrapper,
      [
        'ServerRoot /etc/apache2',
        'ServerName localhost',
        `DefaultRuntimeDir ${scratch}`,
        `PidFile ${scratch}/apache2.pid`,
        `Mutex file:${scratch} default`,
        'ErrorLog /dev/null',
        'IncludeOptional mods-enabled/*.load',
        'IncludeOptional mods-enabled/*.conf',
        // What the drop-ins use, from mods-available when not enabled: the check must not
        // depend on apache2 being configured (it is only unpacked when a package that merely
        // Recommends it runs its postinst in the same apt run) or on what the admin enabled.
        ...APACHE_CHECK_MODULES.map(([name, file]) => loadUnlessLoaded(name, file)),
        `Include ${candidate}`,
        '',
      ].join('\n'),
    );
    const env = { ...process.env, APACHE_RUN_DIR: scratch, APACHE_LOCK_DIR: scratch, APACHE_LOG_DIR: scratch, APACHE_PID_FILE: `${scratch}/apache2.pid`, APACHE_RUN_USER: 'www-data', APACHE_RUN_GROUP: 'www-data' };
    const result = await runCommand(program, ['-t', '-f', wrapper], { env });
    const output = `${result.stderr}\n${result.stdout}`.replace(/Syntax OK/, '');
    return { ok: result.code === 0, message: firstLine(output) || `exit ${result.code}` };
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
};

/**
 * debconf-set-selections -c checks preseed syntax. It still opens a debconf database and
 * takes its lock, so it gets a private, empty one: a check never touches (or waits on, or
 * fails because of) the system database that a running dpkg may hold.
 */
export const validateDebconf: Validator = async (candidate) => {
  const program = requireProgram('debconf', ['debconf-set-selections'], 'debconf');
  const scratch = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'uec-debconf-check-'));
  try {
    const rc = path.join(scratch, 'debconf.conf');
    await fs.promises.writeFile(rc, [
      'Config: configdb', 'Templates: templatedb', '',
      'Name: configdb', 'Driver: File', `Filename: ${scratch}/config.dat`, '',
      'Name: templatedb', 'Driver: File', `Filename: ${scratch}/templates.dat`, '',
    ].join('\n'));
    const result = await runCommand(program, ['-c', candidate], { env: { ...process.env, DEBCONF_SYSTEMRC: rc } });
    const output = `${result.stderr}\n${result.stdout}`;
    return { ok: result.code === 0 && !/warning|error/i.test(output), message: firstLine(output) || `exit ${result.code}` };
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
};

/**
 * apt-cacher-ng reads every *.conf of its config directory: acngtool cfgdump parses a
 * directory holding only the candidate and exits 1 on an unknown directive or bad value.
 */
export const validateAptCacherNg: Validator = async (candidate) => {
  const program = requireProgram('apt-cacher-ng', ['/usr/lib/apt-cacher-ng/acngtool'], 'apt-cacher-ng');
  const scratch = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'uec-acng-check-'));
  try {
    await fs.promises.copyFile(candidate, path.join(scratch, 'candidate.conf'));
    const result = await runCommand(program, ['cfgdump', '-c', scratch]);
    const complaint = result.stderr.split('\n').find((l) => /warning|error/i.test(l)) ?? '';
    return { ok: result.code === 0 && complaint === '', message: complaint.trim() || `exit ${result.code}` };
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
};

export const VALIDATORS: Record<ValidatorName, Validator> = {
  dnsmasq: validateDnsmasq,
  apache2: validateApache2,
  debconf: validateDebconf,
  'apt-cacher-ng': validateAptCacherNg,
};

/** Validate text as a file of the given kind; throws VALIDATION_FAILED naming the target. */
export async function validateContent(kind: ValidatorName, targetLabel: string, content: string, validators = VALIDATORS): Promise<void> {
  const scratch = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'uec-validate-'));
  try {
    const candidate = path.join(scratch, path.basename(targetLabel) || 'candidate');
    await fs.promises.writeFile(candidate, content, { mode: 0o644 });
    await fs.promises.chmod(scratch, 0o755); // dnsmasq may read as another user
    let outcome: ValidationOutcome;
    try {
      outcome = await validators[kind](candidate);
    } catch (err) {
      if (err instanceof UecError) throw err;
      throw new UecError('VALIDATION_FAILED', `${targetLabel}: could not run the ${kind} check: ${describeError(err)}`, { cause: err });
    }
    if (!outcome.ok) {
      const message = outcome.message.split(candidate).join(targetLabel);
      throw new UecError('VALIDATION_FAILED', `${targetLabel}: rejected by ${kind}: ${message}; nothing was written`);
    }
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}
