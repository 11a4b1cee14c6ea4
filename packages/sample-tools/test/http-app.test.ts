import type { AddressInfo } from 'node:net';
import { createAuthSec, silentLogger } from '@authsec/core';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type SampleHttpMountFunction,
  type SampleHttpOpened,
  type ServedSampleHttpApp,
  serveSampleHttpApp,
} from '../src/index.js';

/** A promise the test settles by hand: the start-up step it stands for ends when the test says so. */
function gate(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

async function opened(resourceUrl: string): Promise<SampleHttpOpened> {
  const { publicKey } = await generateKeyPair('ES256');
  const authsec = createAuthSec({
    issuers: [
      { issuer: 'https://idp.start-up.test', keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] },
    ],
    audience: resourceUrl,
    logger: silentLogger,
  });
  return { tools: [], authsec, issuers: [], close: () => authsec.close() };
}

/** A request with a client timeout: a hang fails the test instead of stalling it. */
function get(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(3000) });
}

const served: ServedSampleHttpApp[] = [];
afterEach(async () => {
  await Promise.all(served.splice(0).map((s) => s.close()));
});

describe('serveSampleHttpApp during start-up', () => {
  it('answers 503 with Retry-After while opening, then the mount answers once ready', async () => {
    const opening = gate();
    let bound: ((url: string) => void) | undefined;
    const resourceUrl = new Promise<string>((resolve) => {
      bound = resolve;
    });
    const mount: SampleHttpMountFunction = async ({ http }) => {
      http.on('request', (_req, res) => res.end('mounted'));
      return { close: async () => {} };
    };
    const starting = serveSampleHttpApp({
      host: '127.0.0.1',
      port: 0,
      mount,
      async open(url) {
        bound?.(url);
        // The slow step: the start-up window stays open until the test has sent its request.
        await opening.promise;
        return opened(url);
      },
    });
    const origin = new URL(await resourceUrl).origin;

    const early = await get(`${origin}/mcp`);
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('1');
    expect(early.headers.get('content-type')).toBe('application/json');
    expect(await early.json()).toEqual({ status: 'starting' });
    const probe = await fetch(`${origin}/readyz`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(3000),
    });
    expect(probe.status).toBe(503);

    opening.release();
    served.push(await starting);
    const late = await get(`${origin}/mcp`);
    expect(late.status).toBe(200);
    expect(await late.text()).toBe('mounted');
  });

  it('keeps a handler the mount attached early from answering until the mount resolved', async () => {
    // Fastify's serverFactory attaches the handler before `ready()`; requests in between must not reach it.
    const mounting = gate();
    let attached: ((port: number) => void) | undefined;
    const handlerAttached = new Promise<number>((resolve) => {
      attached = resolve;
    });
    let reached = 0;
    const starting = serveSampleHttpApp({
      host: '127.0.0.1',
      port: 0,
      open: opened,
      async mount({ http }) {
        http.on('request', (_req, res) => {
          reached++;
          res.end('mounted');
        });
        attached?.((http.address() as AddressInfo).port);
        await mounting.promise;
        return { close: async () => {} };
      },
    });
    const port = await handlerAttached;
    const early = await get(`http://127.0.0.1:${port}/mcp`);
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('1');
    expect(reached).toBe(0);

    mounting.release();
    const app = await starting;
    served.push(app);
    const late = await get(`http://127.0.0.1:${app.port}/mcp`);
    expect(late.status).toBe(200);
    expect(reached).toBe(1);
  });
});
