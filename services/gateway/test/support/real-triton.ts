/** DEVELOPMENT STAND-IN (to be replaced by the real Triton launcher): two fixture upstreams. */
import { FixtureTriton } from './fixture-triton.ts';

export interface Upstreams {
  readonly stable: string;
  readonly canary: string;
  stop(): Promise<void>;
}

export async function startUpstreams(): Promise<Upstreams> {
  const stable = await FixtureTriton.start({ name: 'stable' });
  const canary = await FixtureTriton.start({ name: 'canary', reply: (i) => i.text_input });
  return { stable: stable.url, canary: canary.url, stop: async () => void (await Promise.all([stable.stop(), canary.stop()])) };
}
