// Opens a SharedEngine over a store in its own process and reports its role, so tests can SIGKILL an owner.
// Usage: node sharedOwnerChild.js <storeDir>
import { SharedEngine } from '../../src/engine/remote/sharedEngine';

async function main(): Promise<void> {
  const shared = await SharedEngine.open({ storeDir: process.argv[2], retryDelayFloorSeconds: 0, checkpointIntervalMs: 100, checkpointBytes: 128 * 1024, storeBatchMs: 5 });
  process.stdout.write(JSON.stringify({ role: shared.role }) + '\n');
  shared.onDidChangeService(() => process.stdout.write(JSON.stringify({ role: shared.role }) + '\n'));
  process.on('SIGTERM', () => void shared.dispose().then(() => process.exit(0)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
