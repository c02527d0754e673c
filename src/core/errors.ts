/**
 * One error base class with a stable `code`. Only the CLI's main turns codes into exit
 * statuses; docs/errors.md lists every code and test/src/errors.test.ts keeps the two in sync.
 */

export const ERROR_CODES = {
  USAGE: { exit: 2, summary: 'the command line is wrong (unknown subcommand, option or missing argument)' },
  CONFIG_SYNTAX: { exit: 3, summary: 'a configuration file is not valid INI' },
  CONFIG_UNKNOWN_KEY: { exit: 3, summary: 'a configuration file names a section or key that does not exist' },
  CONFIG_INVALID_VALUE: { exit: 3, summary: 'a configuration value has the wrong type or format' },
  CONFIG_UNREADABLE: { exit: 3, summary: 'a configuration file or drop-in cannot be read' },
  CONFIG_OVERRIDDEN: { exit: 3, summary: 'config set cannot take effect: a later drop-in sets the same key' },
  INVALID_VALUE: { exit: 3, summary: 'a value to be written into a generated file is not valid for that format' },
  TEMPLATE_NOT_FOUND: { exit: 4, summary: 'no template of that name in the override or shipped directory' },
  TEMPLATE_SYNTAX: { exit: 4, summary: 'a template cannot be parsed' },
  TEMPLATE_MISSING_VARIABLE: { exit: 4, summary: 'a template uses a variable that the render did not provide' },
  VALIDATION_FAILED: { exit: 5, summary: 'the real tool (dnsmasq, apache2, debconf) rejected a rendered file; nothing was written' },
  VALIDATOR_MISSING: { exit: 5, summary: 'the tool needed to validate a rendered file is not installed' },
  WRITE_FAILED: { exit: 6, summary: 'a file could not be written; the previous files were restored' },
  SERVICE_FAILED: { exit: 7, summary: 'a service could not be reloaded; the previous files were restored' },
  COMPONENT_UNKNOWN: { exit: 2, summary: 'no installed component of that name' },
  NETWORK_FACTS_FAILED: { exit: 8, summary: 'the network interfaces could not be read' },
  NODE_UNKNOWN: { exit: 9, summary: 'no node with that system id, hostname or MAC' },
  NODE_CONFLICT: { exit: 9, summary: 'another node already has that MAC, hostname or address' },
  NODE_STATE: { exit: 9, summary: 'the node is not in a status that allows this (for example deploy while deploying)' },
  ROLE_UNKNOWN: { exit: 9, summary: 'no role of that name, or the role cannot be installed on that release' },
  STORE_FAILED: { exit: 6, summary: 'the node store could not be read, locked or written; it is unchanged' },
  IMAGE_INVALID: { exit: 10, summary: 'a netboot image source is truncated, malformed or fails its checksum; nothing was imported' },
  IMAGE_UNKNOWN: { exit: 10, summary: 'no imported netboot image of that os/release/arch' },
  DHCP_SERVER_FOUND: { exit: 11, summary: 'another DHCP server answers on the interface; full mode refused (use proxy mode, or --force)' },
  UPSTREAM_FAILED: { exit: 12, summary: 'a remote service (upstream archive, download, region) failed or is unreachable; nothing was changed' },
  MIRROR_FAILED: { exit: 15, summary: 'a local mirror sync step failed (disk full, no space for the run, another sync running); the served tree is the last good one' },
  ACCOUNT_FAILED: { exit: 13, summary: 'a web UI account, password or API token could not be created, changed or checked' },
  POWER_FAILED: { exit: 14, summary: 'a power action (Wake-on-LAN packet, IPMI through ipmitool) failed; the attempt is recorded on the node timeline' },
  INTERNAL: { exit: 1, summary: 'an unexpected error (a bug): please report it with the log' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class UecError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UecError';
    this.code = code;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

/** The message of any thrown value, for wrapping low-level errors into one readable line. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    return errno && !err.message.startsWith(errno) ? `${errno}: ${err.message}` : err.message;
  }
  return String(err);
}
