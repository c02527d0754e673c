/** Issue 13: the web UI listens on loopback by default (apache2 fronts it); an admin may choose another address. */
import t from 'tap';
import { writeManagedSettings } from '../../../src/core/config';
import { startWebui } from '../../../packages/webui';
import { WEBUI_SCHEMA } from '../../../packages/webui/config-schema';
import { startHarness } from './harness';

t.test('webui.listen defaults to 127.0.0.1, and the service binds there', async (t) => {
  t.equal(WEBUI_SCHEMA.webui?.keys.listen?.default, '127.0.0.1');
  t.match(WEBUI_SCHEMA.webui?.keys.listen?.description, /127\.0\.0\.1.*apache2/);
  const h = await startHarness(t);
  const running = await startWebui(h.session, { port: 0 });
  t.teardown(() => running.close());
  t.ok(h.logs.some((l) => l.includes(`web UI listening on 127.0.0.1:${running.port}/uec-provisioning/`)), 'the log names loopback');
  t.equal((await fetch(`http://127.0.0.1:${running.port}/uec-provisioning/login`)).status, 200);
});

t.test('an admin may set another address', async (t) => {
  const h = await startHarness(t);
  // Another loopback address stands for "another address": nothing listens on a real interface.
  await writeManagedSettings(h.paths, h.session.schema, new Map([['webui.listen', '127.0.0.2']]));
  const running = await startWebui(h.session, { port: 0 });
  t.teardown(() => running.close());
  t.ok(h.logs.some((l) => l.includes(`web UI listening on 127.0.0.2:${running.port}/`)));
  t.equal((await fetch(`http://127.0.0.2:${running.port}/uec-provisioning/login`)).status, 200);
  const refused = await fetch(`http://127.0.0.1:${running.port}/uec-provisioning/login`).then(
    () => 'answered',
    () => 'refused',
  );
  t.equal(refused, 'refused', 'not on 127.0.0.1 then');
});
