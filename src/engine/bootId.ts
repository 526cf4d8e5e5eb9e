// Within one boot the kernel keeps the page cache: bytes a process handed to write() before it was killed are
// still in the file afterwards, even if they were never fdatasync'd. Only a power cut or OS crash loses them.
// The boot id tells the two apart, so a crashed process can keep what it wrote (once flushed) instead of
// fetching it again.
import { readFileSync } from 'node:fs';

/** This boot's id (Linux `boot_id`); undefined elsewhere, where written-but-unsynced bytes are never trusted. */
export const BOOT_ID = readBootId();

function readBootId(): string | undefined {
  if (process.platform !== 'linux') {
    return undefined;
  }
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
