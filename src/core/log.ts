/**
 * Logging: one line per event on stderr, human-readable by default or JSON lines
 * (`--log-json`). Children carry fields such as the component. Never pass tokens or
 * passwords as fields.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level: Level;
  json: boolean;
  write: (line: string) => void;
  now?: () => Date;
}

export function createLogger(options: LoggerOptions, bound: Record<string, unknown> = {}): Logger {
  const emit = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    if (RANK[level] < RANK[options.level]) return;
    const all = { ...bound, ...fields };
    if (options.json) {
      options.write(JSON.stringify({ time: (options.now ?? (() => new Date()))().toISOString(), level, msg: message, ...all }) + '\n');
    } else {
      const extra = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const prefix = level === 'info' ? '' : `${level}: `;
      options.write(`uec-provisioning: ${prefix}${message}${extra ? ` (${extra})` : ''}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

export const SILENT_LOGGER: Logger = createLogger({ level: 'error', json: false, write: () => undefined });
