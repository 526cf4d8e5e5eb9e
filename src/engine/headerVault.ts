// Where a job's custom HTTP headers live. They may carry credentials, so they stay out of the job journal:
// the extension keeps them in VS Code's SecretStorage; plain Node (CLI, tests) uses a private file.
import * as fs from './io';
import * as path from 'node:path';
import { writePrivateFileAtomic } from './privateFile';

export interface HeaderVault {
  get(jobId: string): Promise<Record<string, string> | undefined>;
  set(jobId: string, headers: Record<string, string>): Promise<void>;
  delete(jobId: string): Promise<void>;
}

/** A 0600 JSON file beside the store, for use outside VS Code. */
export class FileHeaderVault implements HeaderVault {
  private cache: Record<string, Record<string, string>> | undefined;
  private readonly file: string;

  constructor(dir: string) {
    this.file = path.join(dir, 'headers.secret.json');
  }

  private async all(): Promise<Record<string, Record<string, string>>> {
    if (!this.cache) {
      try {
        this.cache = JSON.parse(await fs.readFile(this.file, 'utf8')) as Record<string, Record<string, string>>;
      } catch {
        this.cache = {};
      }
    }
    return this.cache;
  }

  async get(jobId: string): Promise<Record<string, string> | undefined> {
    return (await this.all())[jobId];
  }

  async set(jobId: string, headers: Record<string, string>): Promise<void> {
    const all = await this.all();
    all[jobId] = headers;
    await this.write(all);
  }

  async delete(jobId: string): Promise<void> {
    const all = await this.all();
    if (jobId in all) {
      delete all[jobId];
      await this.write(all);
    }
  }

  private async write(all: Record<string, Record<string, string>>): Promise<void> {
    await writePrivateFileAtomic(this.file, JSON.stringify(all));
  }
}
