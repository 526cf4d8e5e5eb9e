// The engine's HeaderVault over VS Code's SecretStorage: custom headers (credentials) never reach the job store.
import type * as vscode from 'vscode';
import type { HeaderVault } from './engine';

const PREFIX = 'managedDownloads.headers.';

export class SecretHeaderVault implements HeaderVault {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  async get(jobId: string): Promise<Record<string, string> | undefined> {
    const raw = await this.secrets.get(PREFIX + jobId);
    if (!raw) {
      return undefined;
    }
    try {
      const parsed = JSON.parse(raw) as unknown;
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, string>) : undefined;
    } catch {
      return undefined;
    }
  }

  async set(jobId: string, headers: Record<string, string>): Promise<void> {
    if (Object.keys(headers).length === 0) {
      await this.secrets.delete(PREFIX + jobId);
      return;
    }
    await this.secrets.store(PREFIX + jobId, JSON.stringify(headers));
  }

  async delete(jobId: string): Promise<void> {
    await this.secrets.delete(PREFIX + jobId);
  }
}
