/**
 * What streaming a boot image costs the serving process, alone: CPU seconds per GB that
 * `send` (src/core/http-util.ts, the code serve answers /boot/images/… with) spends sending a
 * file of the initrd's size on loopback to curl (C, one process, --parallel).
 *
 *   node -r ts-node/register/transpile-only scripts/bench-bootstorm/send-cost.ts [HTTP_UTIL_MODULE]
 *
 * HTTP_UTIL_MODULE: another copy of http-util.ts to compare (for example the previous commit's,
 * `git show REV:src/core/http-util.ts > /tmp/old-http-util.ts`). Env: SEND_COST_MB (file size,
 * default 41), SEND_COST_GETS (downloads, default 40), SEND_COST_PARALLEL (default 4).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { send as sendType } from '../../src/core/http-util';

async function main(): Promise<void> {
  const modulePath = path.resolve(process.argv[2] ?? path.join(__dirname, '../../src/core/http-util.ts'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { send } = require(modulePath) as { send: typeof sendType };
  const mb = Number(process.env.SEND_COST_MB ?? 41);
  const gets = Number(process.env.SEND_COST_GETS ?? 40);
  const parallel = Number(process.env.SEND_COST_PARALLEL ?? 4);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-send-cost-'));
  const file = path.join(dir, 'initrd.gz');
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < mb; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  const size = fs.statSync(file).size;
  const srv = http.createServer((req, res) => send(res, { status: 200, body: '', file, size }, req.method));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/initrd.gz`;
  const args = ['-sS', '--no-progress-meter', '--fail', '--parallel', '--parallel-max', String(parallel), '-w', '%{size_download}\\n'];
  for (let i = 0; i < gets; i++) args.push('-o', '/dev/null', url);
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  const out = await new Promise<string>((resolve, reject) => {
    const curl = spawn('curl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    curl.stdout.on('data', (d: Buffer) => (text += d.toString()));
    curl.on('error', reject);
    curl.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`curl exited ${code}`))));
  });
  const cpu = process.cpuUsage(cpu0);
  const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
  srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const sizes = out.trim().split('\n').map(Number);
  if (sizes.length !== gets || sizes.some((s) => s !== size)) throw new Error(`short downloads: ${sizes.join(' ')}`);
  const gb = (size * gets) / 1e9;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  process.stdout.write(
    `${path.relative(process.cwd(), modulePath)}: ${gets} × ${size} B (${gb.toFixed(2)} GB), ${parallel} at a time: ` +
      `CPU ${cpuS.toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, sys ${(cpu.system / 1e6).toFixed(2)}) = ${(cpuS / gb).toFixed(3)} CPU s/GB; ` +
      `wall ${wall.toFixed(2)} s; peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`send-cost: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
