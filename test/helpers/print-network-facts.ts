/**
 * Prints, as one JSON line, what createSystemNetworkFacts() sees from where it runs, plus
 * systeminformation's raw records for diagnosis. Run inside a test namespace by
 * test/src/network-facts.test.ts:
 *   ip netns exec NS node -r ts-node/register/transpile-only -e "require('./test/helpers/print-network-facts.ts')"
 */
import * as si from 'systeminformation';
import { createSystemNetworkFacts } from '../../src/core/network-facts';

async function main(): Promise<void> {
  const facts = createSystemNetworkFacts();
  const interfaces = await facts.listInterfaces();
  const defaultRoute = await facts.defaultRoute();
  const raw = {
    networkInterfaces: await si.networkInterfaces(),
    networkInterfaceDefault: await si.networkInterfaceDefault(),
    networkGatewayDefault: await si.networkGatewayDefault(),
  };
  process.stdout.write(JSON.stringify({ interfaces, defaultRoute, raw }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
