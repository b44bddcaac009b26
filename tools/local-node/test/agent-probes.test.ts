/** Probes: one attempt of each kind, and a liveness probe's failureThreshold counted at its period. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeOnce, probePort, Prober } from '../src/agent/probes.ts';

let server: Server;
let port = 0;
let hits = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    hits++;
    res.statusCode = req.url === '/ok' ? 200 : 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const container = { name: 'c', ports: [{ name: 'http', containerPort: 8000 }] };
const target = { ip: '127.0.0.1', env: {} };

describe('probes', () => {
  it('resolves named and numeric ports', () => {
    expect(probePort(container, 'http')).toBe(8000);
    expect(probePort(container, 9)).toBe(9);
    expect(() => probePort(container, 'grpc')).toThrow(/not a port of container c/);
  });
  it('httpGet succeeds on 2xx/3xx only; tcpSocket on a connect', async () => {
    expect(await probeOnce({ httpGet: { path: '/ok', port } }, container, target)).toBe(true);
    expect(await probeOnce({ httpGet: { path: '/bad', port } }, container, target)).toBe(false);
    expect(await probeOnce({ tcpSocket: { port } }, container, target)).toBe(true);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const free = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await probeOnce({ tcpSocket: { port: free } }, container, target)).toBe(false);
  });
  it('a failing liveness probe reports once, after exactly failureThreshold attempts', async () => {
    hits = 0;
    const verdicts: boolean[] = [];
    await new Promise<void>((resolve) => {
      const p = new Prober({ httpGet: { path: '/bad', port }, periodSeconds: 0.05, failureThreshold: 3 }, container, () => target, (ok) => {
        verdicts.push(ok);
        p.stop();
        resolve();
      });
      p.start();
    });
    expect(verdicts).toEqual([false]);
    expect(hits).toBe(3);
  });
});
