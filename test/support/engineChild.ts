// A download engine in its own process, so tests can SIGKILL it mid-transfer and start it again.
// Usage: node engineChild.js <storeDir> <url> <dest> [sha256]
// Prints JSON lines: {"event":"progress","durable":N} after checkpoints, {"event":"transferred"} at the end.
import { DownloadEngine } from '../../src/engine';

async function main(): Promise<void> {
  const [storeDir, url, dest, sha256] = process.argv.slice(2);
  const engine = await DownloadEngine.open({ storeDir, retryDelayFloorSeconds: 0, checkpointIntervalMs: 100, checkpointBytes: 256 * 1024, storeBatchMs: 5 });
  let job = engine.enumJobs()[0];
  if (!job) {
    job = await engine.createJob({ displayName: 'crash test' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(url, dest, { sha256 });
    await job.resume();
  }
  const report = (): void => {
    const f = job.record.files[0];
    process.stdout.write(JSON.stringify({ event: 'progress', durable: f.durableBytes, live: job.getProgress().bytesTransferred, state: job.state }) + '\n');
    if (job.state === 'TRANSFERRED') {
      process.stdout.write(JSON.stringify({ event: 'transferred', restarts: f.restarts }) + '\n');
      void engine.dispose().then(() => process.exit(0));
    } else if (job.state === 'ERROR') {
      process.stdout.write(JSON.stringify({ event: 'error', error: job.getError() }) + '\n');
      void engine.dispose().then(() => process.exit(2));
    }
  };
  engine.onDidChangeJob(report);
  report();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
