// vscode-jsonrpc is loaded when a second window connects, not at every activation (about 25 ms to require).
import type * as JsonRpc from 'vscode-jsonrpc/node';

let loaded: typeof JsonRpc | undefined;

export function jsonRpc(): typeof JsonRpc {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberately lazy (see above)
  return (loaded ??= require('vscode-jsonrpc/node') as typeof JsonRpc);
}

/** A JSON-RPC connection over a socket (Unix socket or named pipe). */
export function connectionOver(socket: import('node:net').Socket): JsonRpc.MessageConnection {
  const { createMessageConnection, SocketMessageReader, SocketMessageWriter } = jsonRpc();
  return createMessageConnection(new SocketMessageReader(socket), new SocketMessageWriter(socket));
}
