/**
 * Debian archive index files, parsed (pure): a Release file's fields and SHA256 list, and
 * the Filename/Size/SHA256 of each stanza of a Packages file.
 */
export interface ReleaseFile {
  fields: Map<string, string>;
  /** path relative to dists/<suite>/ → size and sha256. */
  sha256: Map<string, { size: number; sha256: string }>;
}

export function parseRelease(text: string): ReleaseFile {
  const fields = new Map<string, string>();
  const sha256 = new Map<string, { size: number; sha256: string }>();
  let current: string | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith(' ')) {
      if (current === 'SHA256') {
        const [hash, size, name] = line.trim().split(/\s+/);
        if (hash && size && name) sha256.set(name, { size: Number(size), sha256: hash.toLowerCase() });
      }
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current = line.slice(0, colon);
    fields.set(current, line.slice(colon + 1).trim());
  }
  return { fields, sha256 };
}

export interface PoolEntry {
  filename: string;
  size: number;
  sha256: string;
}

export function parsePackages(text: string): PoolEntry[] {
  const out: PoolEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const get = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(stanza)?.[1]?.trim();
    const filename = get('Filename');
    if (!filename) continue;
    out.push({ filename, size: Number(get('Size') ?? -1), sha256: (get('SHA256') ?? '').toLowerCase() });
  }
  return out;
}
