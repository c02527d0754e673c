/**
 * Sync progress: on a terminal one line redrawn in place (files, bytes, rate, ETA); in logs
 * plain lines, one per stage and at most one every `intervalMs` while downloading.
 */
export interface ProgressCounts {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface ProgressSink {
  stage(text: string): void;
  update(counts: ProgressCounts): void;
  done(): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** One progress line (pure): "files 3/5, 1.2 MiB of 3.3 MiB, 450.0 KiB/s, ETA 0:05". */
export function renderProgressLine(counts: ProgressCounts, elapsedSeconds: number): string {
  const rate = elapsedSeconds > 0 ? counts.bytes / elapsedSeconds : 0;
  const remaining = Math.max(0, counts.totalBytes - counts.bytes);
  const eta = rate > 0 ? remaining / rate : Number.NaN;
  return `files ${counts.files}/${counts.totalFiles}, ${formatBytes(counts.bytes)} of ${formatBytes(counts.totalBytes)}, ${formatBytes(rate)}/s, ETA ${formatDuration(eta)}`;
}

export function createProgress(write: (text: string) => void, interactive: boolean, now: () => number = Date.now, intervalMs = 10_000): ProgressSink {
  let started = now();
  let lastPlain = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) write('\r\x1b[K');
    drawn = false;
  };
  return {
    stage(text) {
      clear();
      started = now();
      lastPlain = 0;
      write(`uec-provisioning: mirror sync: ${text}\n`);
    },
    update(counts) {
      const line = renderProgressLine(counts, (now() - started) / 1000);
      if (interactive) {
        write(`\r\x1b[K${line}`);
        drawn = true;
      } else if (now() - lastPlain >= intervalMs) {
        lastPlain = now();
        write(`uec-provisioning: mirror sync: ${line}\n`);
      }
    },
    done() {
      clear();
    },
  };
}

export const NO_PROGRESS: ProgressSink = { stage: () => undefined, update: () => undefined, done: () => undefined };
