/**
 * Mustache templates: an admin's file in /etc/uec-provisioning/templates/ wins over the
 * shipped one in /usr/share/uec-provisioning/templates/. Rendering is strict: a name that
 * does not resolve in the view is an error (mustache alone would print nothing), raw
 * {{{triple}}} or {{&amp}} tags are refused, and every value passes the target format's
 * check instead of mustache's HTML escaping.
 */
import * as path from 'node:path';
import Mustache from 'mustache';
import { UecError, describeError } from './errors';
import { readFileIfExists } from './fs-ops';
import { SYSTEM, type Paths } from './paths';

export const SHIPPED_TEMPLATE_DIR = '/usr/share/uec-provisioning/templates';

export interface Template {
  /** Name relative to the template directory, for example "common/example.conf.mustache". */
  name: string;
  /** The file it came from (system path), for messages and logs. */
  file: string;
  text: string;
}

/** How a value is made safe for the target file: return the text to insert or throw. */
export type ValueEscaper = (value: string, variable: string) => string;

export interface TemplateDirs {
  /** Searched first: the admin's overrides. */
  override: string;
  /** Searched second: the templates the packages ship. */
  shipped: string;
}

/**
 * Where templates live. Under a scratch root the shipped directory may be given explicitly
 * (a checkout's templates/), since the packages are not installed there.
 */
export function templateDirs(paths: Paths, shippedDir?: string): TemplateDirs {
  return {
    override: paths.resolve(SYSTEM.templateOverrideDir),
    shipped: shippedDir ?? process.env.UEC_PROVISIONING_TEMPLATES ?? paths.resolve(SHIPPED_TEMPLATE_DIR),
  };
}

/** The candidate files for a template name, most specific first. Pure. */
export function selectTemplateCandidates(dirs: TemplateDirs, name: string): string[] {
  const normal = path.posix.normalize(name);
  if (path.posix.isAbsolute(normal) || normal.startsWith('..')) {
    throw new UecError('TEMPLATE_NOT_FOUND', `template name "${name}" must be relative and stay inside the template directory`);
  }
  return [path.join(dirs.override, normal), path.join(dirs.shipped, normal)];
}

export async function loadTemplate(dirs: TemplateDirs, name: string): Promise<Template> {
  const candidates = selectTemplateCandidates(dirs, name);
  for (const file of candidates) {
    let buf: Buffer | null;
    try {
      buf = await readFileIfExists(file);
    } catch (err) {
      throw new UecError('TEMPLATE_NOT_FOUND', `cannot read template ${file}: ${describeError(err)}`, { cause: err });
    }
    if (buf !== null) return { name, file, text: buf.toString('utf8') };
  }
  throw new UecError('TEMPLATE_NOT_FOUND', `template ${name} not found (looked in ${candidates.join(', ')})`);
}

type Token = [string, string, number, number, Token[]?, number?];

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function parseTokens(template: Template): Token[] {
  try {
    return Mustache.parse(template.text) as unknown as Token[];
  } catch (err) {
    // mustache says where as a character offset ("Unclosed tag at 25"): name the line instead.
    const at = /^(.*) at (\d+)$/.exec(describeError(err));
    const where = at ? `${template.file}:${lineOf(template.text, Number(at[2]))}: ${at[1]}` : `${template.file}: ${describeError(err)}`;
    throw new UecError('TEMPLATE_SYNTAX', where, { cause: err });
  }
}

/** Look a (possibly dotted) name up in a context stack, innermost first, as mustache does. */
function lookup(stack: unknown[], name: string): { found: boolean; value: unknown } {
  if (name === '.') return { found: true, value: stack[stack.length - 1] };
  const parts = name.split('.');
  for (let i = stack.length - 1; i >= 0; i--) {
    let value: unknown = stack[i];
    let found = true;
    for (const part of parts) {
      if (value !== null && typeof value === 'object' && Object.prototype.hasOwnProperty.call(value, part)) {
        value = (value as Record<string, unknown>)[part];
      } else {
        found = false;
        break;
      }
    }
    if (found) return { found, value };
  }
  return { found: false, value: undefined };
}

function checkTokens(template: Template, tokens: Token[], stack: unknown[]): void {
  for (const token of tokens) {
    const [kind, name, start] = token;
    const where = () => `${template.file}:${lineOf(template.text, start)}`;
    if (kind === 'text' || kind === '!' || kind === '=') continue;
    if (kind === '&' || kind === '{') {
      throw new UecError('TEMPLATE_SYNTAX', `${where()}: raw tag for "${name}" is not allowed; use {{${name}}} so the value is checked`);
    }
    if (kind === '>') throw new UecError('TEMPLATE_SYNTAX', `${where()}: partials ("{{>${name}}}") are not supported`);
    const { found, value } = lookup(stack, name);
    if (!found || value === undefined) {
      throw new UecError('TEMPLATE_MISSING_VARIABLE', `${where()}: variable "${name}" has no value`);
    }
    if (kind === 'name') continue;
    const children = token[4] ?? [];
    if (kind === '^') {
      if (!value || (Array.isArray(value) && value.length === 0)) checkTokens(template, children, stack);
    } else if (kind === '#') {
      if (Array.isArray(value)) for (const item of value) checkTokens(template, children, [...stack, item]);
      else if (value && typeof value === 'object') checkTokens(template, children, [...stack, value]);
      else if (value) checkTokens(template, children, stack);
    }
  }
}

/** Parse a template and check it against a view: every name resolves, no raw tags. */
export function checkTemplate(template: Template, view: object): void {
  checkTokens(template, parseTokens(template), [view]);
}

/** Render a template. Pure: the template and view in, text out; throws on any missing value. */
export function renderTemplate(template: Template, view: object, escape: ValueEscaper): string {
  checkTemplate(template, view);
  // mustache hands its escape hook only the value, so errors name the value and the file.
  const options = { escape: (value: unknown) => escape(String(value), '') };
  try {
    return Mustache.render(template.text, view, {}, options as unknown as Mustache.RenderOptions);
  } catch (err) {
    if (err instanceof UecError) throw new UecError(err.code, `${template.file}: ${err.message}`, { cause: err });
    throw new UecError('TEMPLATE_SYNTAX', `${template.file}: ${describeError(err)}`, { cause: err });
  }
}

/**
 * An escaper that refuses instead of escaping: the value must pass `check` (a format check
 * from formats.ts) or rendering stops with an error naming the value.
 */
export function refusingEscaper(formatName: string, check: (value: string) => string | null): ValueEscaper {
  return (value, variable) => {
    const reason = check(value);
    if (reason) {
      const label = variable ? `${variable} ` : '';
      throw new UecError('INVALID_VALUE', `value ${label}${JSON.stringify(value)} cannot go into a ${formatName} file: ${reason}`);
    }
    return value;
  };
}
