/**
 * Real Triton upstreams for the playground and loop tests, through the triton branch's launcher
 * (services/trainer/scripts/serve.mjs, contract §2): stable serves the tiny trained model's export (made once per
 * machine), canary the echo model (it answers the prompt back). The first run builds the serving environment and
 * the tiny export (minutes); later runs reuse both.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Triton {
  readonly url: string;
  stop(): Promise<void>;
}
interface ServeModule {
  startTriton(opts: { repository: string; log?: (line: string) => void; readyTimeoutMs?: number }): Promise<Triton>;
  ensureTinyExport(): Promise<string>;
  readonly ECHO_REPOSITORY: string;
}

export interface Upstreams {
  readonly stable: string;
  /** Absent when only stable was asked for. */
  readonly canary: string;
  stop(): Promise<void>;
}

const SERVE = fileURLToPath(new URL('../../../trainer/scripts/serve.mjs', import.meta.url));

/** tritonserver on the tiny export (stable) and, unless `canary: false`, on the echo repository (canary). */
export async function startUpstreams(o: { readonly canary?: boolean } = {}): Promise<Upstreams> {
  const serve = (await import(SERVE)) as ServeModule;
  const tail: string[] = [];
  const log = (l: string) => {
    tail.push(l);
    if (tail.length > 40) tail.shift();
  };
  const started: Triton[] = [];
  try {
    const tiny = await serve.ensureTinyExport();
    const results = await Promise.allSettled([serve.startTriton({ repository: join(tiny, 'completions'), log }), ...(o.canary === false ? [] : [serve.startTriton({ repository: serve.ECHO_REPOSITORY, log })])]);
    for (const r of results) if (r.status === 'fulfilled') started.push(r.value);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return { stable: started[0]!.url, canary: started[1]?.url ?? '', stop: async () => void (await Promise.all(started.map((t) => t.stop()))) };
  } catch (e) {
    await Promise.all(started.map((t) => t.stop()));
    throw new Error(`cannot start the Triton upstreams: ${(e as Error).message}\n${tail.join('\n')}`);
  }
}
