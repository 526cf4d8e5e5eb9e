// The part of undici the engine uses: its Agent and ProxyAgent and the base its dispatchers are built on, with the
// request()/connect() API on every dispatcher (as undici's own index sets it up). Not the index itself: it also loads fetch, WebSocket,
// EventSource, the HTTP cache, cookies and the mocks, which doubled the time undici took to load (about 90 ms
// of blocked event loop at the first download, measured in the CLI's profile). These are undici's CommonJS
// modules under lib/, which it does not hide behind an `exports` map; a version that moves them fails the build.
/* eslint-disable @typescript-eslint/no-require-imports */
import type * as Undici from 'undici';

const DispatcherClass = require('undici/lib/dispatcher/dispatcher') as { prototype: object };
Object.assign(DispatcherClass.prototype, require('undici/lib/api') as object);

export const Agent = require('undici/lib/dispatcher/agent') as typeof Undici.Agent;
export const ProxyAgent = require('undici/lib/dispatcher/proxy-agent') as typeof Undici.ProxyAgent;
/** What undici's own dispatchers extend (proxyRouter.ts): open/closed/destroyed states, errors handed to the handler. */
export const DispatcherBase = require('undici/lib/dispatcher/dispatcher-base') as new () => Undici.Dispatcher;
export const { kDispatch, kClose, kDestroy } = require('undici/lib/core/symbols') as { kDispatch: symbol; kClose: symbol; kDestroy: symbol };
export const buildConnector = require('undici/lib/core/connect') as typeof Undici.buildConnector;
