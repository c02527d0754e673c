import t from 'tap';
import { UecError } from '../../src/core/errors';
import { checkLine, checkUrl } from '../../src/core/formats';
import { checkTemplate, loadTemplate, refusingEscaper, renderTemplate, selectTemplateCandidates, templateDirs, type Template } from '../../src/core/template';
import { put, scratchRoot } from '../helpers/scratch';

const tpl = (text: string): Template => ({ name: 'x', file: '/usr/share/uec-provisioning/templates/x.mustache', text });
const lineEscape = refusingEscaper('dnsmasq', checkLine);

t.test('renders values through the format check, not HTML escaping', async (t) => {
  const out = renderTemplate(tpl('a={{a}}\n{{#hosts}}host={{mac}},{{name}}\n{{/hosts}}'), { a: 'x&y<z>', hosts: [{ mac: '52:54:00:00:00:01', name: 'n1' }] }, lineEscape);
  t.equal(out, 'a=x&y<z>\nhost=52:54:00:00:00:01,n1\n');
});

t.test('a missing variable is an error with file and line, never an empty string', async (t) => {
  const err = t.throws(() => renderTemplate(tpl('ok\n\nport={{port}}\n'), {}, lineEscape)) as UecError;
  t.equal(err.code, 'TEMPLATE_MISSING_VARIABLE');
  t.match(err.message, /x\.mustache:3: variable "port" has no value/);
  t.throws(() => renderTemplate(tpl('{{#list}}{{nope}}{{/list}}'), { list: [{ a: 1 }] }, lineEscape), { code: 'TEMPLATE_MISSING_VARIABLE' }, 'inside a section, per item');
  t.throws(() => renderTemplate(tpl('{{#missing}}x{{/missing}}'), {}, lineEscape), { code: 'TEMPLATE_MISSING_VARIABLE' }, 'a section name must resolve too');
});

t.test('sections: empty list, false, nested names and outer context resolve', async (t) => {
  t.equal(renderTemplate(tpl('{{#l}}x{{/l}}{{^l}}none{{/l}}'), { l: [] }, lineEscape), 'none');
  t.equal(renderTemplate(tpl('{{#on}}{{a.b}}{{/on}}'), { on: true, a: { b: 'deep' } }, lineEscape), 'deep');
  t.equal(renderTemplate(tpl('{{#l}}{{top}}-{{.}} {{/l}}'), { top: 'T', l: ['1', '2'] }, lineEscape), 'T-1 T-2 ');
});

t.test('raw tags and partials are refused', async (t) => {
  t.throws(() => checkTemplate(tpl('{{{raw}}}'), { raw: 'x' }), { code: 'TEMPLATE_SYNTAX', message: /raw tag for "raw"/ });
  t.throws(() => checkTemplate(tpl('{{&raw}}'), { raw: 'x' }), { code: 'TEMPLATE_SYNTAX' });
  t.throws(() => checkTemplate(tpl('{{>p}}'), {}), { code: 'TEMPLATE_SYNTAX', message: /partials/ });
});

t.test('a syntax error names the file', async (t) => {
  t.throws(() => renderTemplate(tpl('{{#a}}unclosed'), { a: true }, lineEscape), { code: 'TEMPLATE_SYNTAX', message: /x\.mustache:1: Unclosed section "a"/ });
  t.throws(() => checkTemplate(tpl('one\ntwo\nthree {{oops'), {}), { code: 'TEMPLATE_SYNTAX', message: /x\.mustache:3: Unclosed tag$/ }, 'a syntax error names the line');
});

t.test('newline and quote injection are refused, naming the value', async (t) => {
  const err = t.throws(() => renderTemplate(tpl('dhcp-host={{h}}\n'), { h: 'n1\ndhcp-range=0.0.0.0' }, lineEscape)) as UecError;
  t.equal(err.code, 'INVALID_VALUE');
  t.match(err.message, /"n1\\ndhcp-range=0\.0\.0\.0" cannot go into a dnsmasq file: contains a newline/);
  const urlEscape = refusingEscaper('preseed', checkUrl);
  t.throws(() => renderTemplate(tpl('d-i mirror/http/hostname string {{u}}'), { u: 'http://x/"; reboot' }, urlEscape), { code: 'INVALID_VALUE' });
});

t.test('the admin override in /etc wins over the shipped template', async (t) => {
  const paths = scratchRoot(t);
  const shipped = paths.resolve('/usr/share/uec-provisioning/templates');
  const dirs = templateDirs(paths, shipped);
  put(paths, '/usr/share/uec-provisioning/templates/common/a.mustache', 'shipped');
  t.equal((await loadTemplate(dirs, 'common/a.mustache')).text, 'shipped');
  put(paths, '/etc/uec-provisioning/templates/common/a.mustache', 'admin');
  const loaded = await loadTemplate(dirs, 'common/a.mustache');
  t.equal(loaded.text, 'admin');
  t.equal(loaded.file, paths.resolve('/etc/uec-provisioning/templates/common/a.mustache'));
  await t.rejects(loadTemplate(dirs, 'common/none.mustache'), { code: 'TEMPLATE_NOT_FOUND', message: /common\/none\.mustache not found/ });
});

t.test('candidate list is override then shipped, and refuses escapes', async (t) => {
  t.same(selectTemplateCandidates({ override: '/o', shipped: '/s' }, 'dhcpd/x'), ['/o/dhcpd/x', '/s/dhcpd/x']);
  t.throws(() => selectTemplateCandidates({ override: '/o', shipped: '/s' }, '../../etc/shadow'), { code: 'TEMPLATE_NOT_FOUND' });
  t.throws(() => selectTemplateCandidates({ override: '/o', shipped: '/s' }, '/etc/shadow'), { code: 'TEMPLATE_NOT_FOUND' });
});
