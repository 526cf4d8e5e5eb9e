// Long synchronous loops (thousands of jobs or files) give the event loop a turn once they have held it for a
// few milliseconds, by the clock rather than by a count: the cost of one item varies a hundredfold (a job of one
// file, a job of 100,000), and a count tuned for one is a long pause for the other.
import { performance } from 'node:perf_hooks';

/** How long a loop may hold the event loop before it yields (the bar: p99 < 20 ms, max < 100 ms). */
const BUDGET_MS = 8;

export const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export class TurnBudget {
  private since = performance.now();

  constructor(private readonly budgetMs = BUDGET_MS) {}

  /** Whether the loop has held the event loop past its budget (then it should await yieldNow()). */
  get spent(): boolean {
    return performance.now() - this.since >= this.budgetMs;
  }

  /** Yields if the budget is spent; a cheap no-op otherwise. */
  async breathe(): Promise<void> {
    if (this.spent) {
      await nextTurn();
      this.since = performance.now();
    }
  }
}
