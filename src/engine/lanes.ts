// Runs a task for each item with at most `width` in flight: thousands of small file-system calls overlap
// (each is a thread-pool round trip) without thousands of them queued at once.
export async function inLanes<T>(items: readonly T[], width: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) {
      await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
