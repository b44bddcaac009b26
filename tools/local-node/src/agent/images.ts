/**
 * Image resolution of the local node: no registry, no pulls. A pod's image names one of the environments this
 * checkout already has (kiln's TypeScript entry points with Node 24, the trainer's Python environment, the serving
 * environment's tritonserver), matched by repository with any tag or digest. Anything else fails the pod with
 * ErrImagePull and a message naming the images this node can run.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this agent runs from (its entry points are what kiln's images resolve to). */
export const CHECKOUT = fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');

/** The PATH a container gets below its image's own directories. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What an image contributes to a container: its PATH, environment and default working directory. */
export interface ImageEnv {
  readonly kind: ImageKind;
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
}

export type ImageKind = 'node' | 'trainer' | 'triton';

/** Repositories (without tag or digest) this node runs, and which environment each one is. */
export const IMAGES: Readonly<Record<string, ImageKind>> = {
  'kiln/data-prep': 'node',
  'kiln/eval-runner': 'node',
  'kiln/gateway': 'node',
  'kiln/controller': 'node',
  'kiln/trainer': 'trainer',
  'nvcr.io/nvidia/tritonserver': 'triton',
};

/** `registry/repo:tag@sha256:…` → `registry/repo` (a `docker.io/` or `docker.io/library/` prefix dropped). */
export function repository(image: string): string {
  let r = image.trim();
  const at = r.indexOf('@');
  if (at >= 0) r = r.slice(0, at);
  const slash = r.lastIndexOf('/');
  const colon = r.lastIndexOf(':');
  if (colon > slash) r = r.slice(0, colon);
  return r.replace(/^docker\.io\/(library\/)?/, '');
}

/** The environment kind of an image, or undefined when this node cannot run it. */
export const imageKind = (image: string): ImageKind | undefined => IMAGES[repository(image)];

export class ImageError extends Error {
  readonly reason = 'ErrImagePull';
}

/** The message of a pod whose image this node cannot run. */
export function unknownImageMessage(image: string): string {
  return `the local node cannot run image "${image}": it pulls no images and runs only ${Object.keys(IMAGES).join(', ')} (any tag or digest), mapped to this checkout (${CHECKOUT}); use one of those or schedule the pod elsewhere`;
}

function run(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new ImageError(`${argv.slice(1).join(' ')} failed: ${(stderr || err.message).trim().split('\n').slice(-6).join('\n')}`));
      else resolve(stdout);
    });
  });
}

/**
 * Resolves images to environments, once per kind (the Python environments are made on first use by their own
 * scripts, in a child process so that a long install never blocks the agent's heartbeats).
 */
export class Images {
  private readonly cache = new Map<ImageKind, Promise<ImageEnv>>();
  private readonly checkout: string;
  private readonly stateDir: string;

  constructor(opts: { stateDir: string; checkout?: string }) {
    this.stateDir = opts.stateDir;
    this.checkout = opts.checkout ?? CHECKOUT;
  }

  /** The environment of an image; throws ImageError for one this node cannot run. */
  resolve(image: string): Promise<ImageEnv> {
    const kind = imageKind(image);
    if (!kind) return Promise.reject(new ImageError(unknownImageMessage(image)));
    let p = this.cache.get(kind);
    if (!p) {
      p = this.make(kind);
      // A failed install is retried by the next pod, not cached.
      p.catch(() => this.cache.delete(kind));
      this.cache.set(kind, p);
    }
    return p;
  }

  private async make(kind: ImageKind): Promise<ImageEnv> {
    const bin = join(this.checkout, 'node_modules', '.bin');
    const node = process.execPath;
    const base = { HOME: '/root', LANG: 'C.UTF-8' };
    if (kind === 'node') {
      return { kind, workingDir: this.checkout, env: { ...base, PATH: [bin, SYSTEM_PATH].join(delimiter) } };
    }
    if (kind === 'trainer') {
      const script = join(this.checkout, 'services', 'trainer', 'scripts', 'env.mjs');
      const dir = (await run([node, script, 'path'])).trim().split('\n').pop()!;
      return {
        kind,
        workingDir: this.checkout,
        env: {
          ...base,
          VIRTUAL_ENV: dir,
          PATH: [join(dir, 'bin'), bin, SYSTEM_PATH].join(delimiter),
          PYTHONPATH: join(this.checkout, 'services', 'trainer', 'src'),
          PYTHONUNBUFFERED: '1',
          HF_HUB_OFFLINE: '1',
        },
      };
    }
    const script = join(this.checkout, 'services', 'trainer', 'scripts', 'serve-env.mjs');
    const out = await run([node, script, 'info']);
    const info = JSON.parse(out.slice(out.indexOf('{'))) as { tritonserver: string; backends: string; env: Record<string, string> };
    // A `tritonserver` first on PATH that runs the serve environment's with its backends (Triton's image has them
    // at its default --backend-directory; this one keeps them in the environment), and without the GPU/CPU metrics
    // collectors, as services/trainer/scripts/serve.mjs runs it (the pod's own flags come after and win).
    const wrapperDir = join(this.stateDir, 'images', 'triton', 'bin');
    mkdirSync(wrapperDir, { recursive: true });
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    writeFileSync(join(wrapperDir, 'tritonserver'), `#!/bin/sh\n# kiln local node: the Triton image's tritonserver, from the serving environment\nexec ${q(info.tritonserver)} ${q(`--backend-directory=${info.backends}`)} --allow-gpu-metrics=false --allow-cpu-metrics=false "$@"\n`);
    chmodSync(join(wrapperDir, 'tritonserver'), 0o755);
    const envPath = (info.env.PATH ?? '').split(delimiter).filter((d) => d && !SYSTEM_PATH.split(delimiter).includes(d));
    return {
      kind,
      workingDir: this.checkout,
      env: { ...base, ...info.env, PATH: [wrapperDir, ...envPath.slice(0, 1), bin, SYSTEM_PATH].join(delimiter) },
    };
  }
}
