import type { Disposable, Event } from './types';

/** A minimal event emitter whose `event` has vscode.Event's shape; the engine must not import vscode. */
export class Emitter<T> implements Disposable {
  private listeners = new Set<(e: T) => unknown>();

  readonly event: Event<T> = (listener, thisArgs, disposables) => {
    const bound = thisArgs === undefined ? listener : listener.bind(thisArgs);
    this.listeners.add(bound);
    const d = { dispose: () => void this.listeners.delete(bound) };
    disposables?.push(d);
    return d;
  };

  fire(e: T): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        // A faulty listener must not break the engine or the other listeners.
        console.error('Managed Downloads: event listener failed', err);
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
