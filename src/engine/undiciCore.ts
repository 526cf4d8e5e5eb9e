// The part of undici the engine uses: its Agent and EnvHttpProxyAgent, with the request()/connect() API on every
// dispatcher (as undici's own index sets it up). Not the index itself: it also loads fetch, WebSocket,
// EventSource, the HTTP cache, cookies and the mocks, which doubled the time undici took to load (about 90 ms
// of blocked event loop at the first download, measured in the CLI's profile). These are undici's CommonJS
// modules under lib/, which it does not hide behind an `exports` map; a version that moves them fails the build.
/* eslint-disable @typescript-eslint/no-require-imports */
import type * as Undici from 'undici';

const DispatcherClass = require('undici/lib/dispatcher/dispatcher') as { prototype: object };
Object.assign(DispatcherClass.prototype, require('undici/lib/api') as object);

export const Agent = require('undici/lib/dispatcher/agent') as typeof Undici.Agent;
export const EnvHttpProxyAgent = require('undici/lib/dispatcher/env-http-proxy-agent') as typeof Undici.EnvHttpProxyAgent;
export const buildConnector = require('undici/lib/core/connect') as typeof Undici.buildConnector;
