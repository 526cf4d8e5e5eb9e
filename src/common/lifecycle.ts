// Disposable helpers after vscode-pull-request-github's src/common/lifecycle.ts.
import type * as vscode from 'vscode';

export interface IDisposable {
  dispose(): unknown;
}

export function toDisposable(fn: () => unknown): IDisposable {
  return { dispose: fn };
}

export function disposeAll(disposables: IDisposable[]): void {
  while (disposables.length > 0) {
    const d = disposables.pop();
    try {
      void d?.dispose();
    } catch (e) {
      console.error('Managed Downloads: dispose failed', e);
    }
  }
}

/** Owns child disposables; `_register` disposes at once if the owner is already gone. */
export abstract class Disposable implements vscode.Disposable {
  private _isDisposed = false;
  private readonly _disposables: IDisposable[] = [];

  protected get isDisposed(): boolean {
    return this._isDisposed;
  }

  protected _register<T extends IDisposable>(d: T): T {
    if (this._isDisposed) {
      void d.dispose();
    } else {
      this._disposables.push(d);
    }
    return d;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    disposeAll(this._disposables);
  }
}
