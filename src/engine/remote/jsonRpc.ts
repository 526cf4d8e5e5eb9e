// vscode-jsonrpc is loaded when a second window connects, not at every activation (about 25 ms to require).
import type * as JsonRpc from 'vscode-jsonrpc/node';
import { guardMessageSize } from './messageSizeGuard';

let loaded: typeof JsonRpc | undefined;

export function jsonRpc(): typeof JsonRpc {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberately lazy (see above)
  return (loaded ??= require('vscode-jsonrpc/node') as typeof JsonRpc);
}

/**
 * A JSON-RPC connection over a socket (Unix socket or named pipe). With `maxMessageBytes`, a message larger
 * than that (or endless headers) closes the connection instead of being buffered (see messageSizeGuard.ts).
 */
export function connectionOver(socket: import('node:net').Socket, o: { maxMessageBytes?: number; onRefused?: (why: string) => void } = {}): JsonRpc.MessageConnection {
  const { createMessageConnection, SocketMessageReader, StreamMessageReader, SocketMessageWriter } = jsonRpc();
  const reader = o.maxMessageBytes === undefined ? new SocketMessageReader(socket) : new StreamMessageReader(guardMessageSize(socket, o.maxMessageBytes, o.onRefused));
  return createMessageConnection(reader, new SocketMessageWriter(socket));
}
