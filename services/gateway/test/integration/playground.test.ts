/// <reference lib="dom" />
/**
 * The playground in a real browser: Debian's Chromium driven by playwright-core (never a downloaded browser),
 * against the real gateway in front of two real Triton servers — stable serving the tiny trained model, canary
 * the echo model (it answers the prompt back, so a prompt of markup comes back as a completion of markup).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import type { FeedbackRecord } from '../../src/feedback.ts';
import { Gateway } from '../../src/gateway.ts';
import { startUpstreams, type Upstreams } from '../support/real-triton.ts';

const KEY = 'kiln-playground-key-0123456789';
// The docs' picture is refreshed only when asked (KILN_UPDATE_DOCS=1); otherwise the screenshot goes with the test results.
const SCREENSHOT = fileURLToPath(new URL(process.env.KILN_UPDATE_DOCS === '1' ? '../../../../docs/images/playground.png' : '../../test-results/playground.png', import.meta.url));

/** Debian's chromium on PATH; the test fails, saying how to install it, when there is none. */
function chromiumPath(): string {
  let path = '';
  try {
    path = execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    path = '';
  }
  if (!path) throw new Error('the playground test needs Chromium on PATH (`chromium`): apt-get install chromium');
  return path;
}

const tmp = mkdtempSync(join(tmpdir(), 'kiln-playground-'));
const feedbackDir = join(tmp, 'feedback', 'completions');
let upstreams: Upstreams;
let gateway: Gateway;
let url: string;
let browser: Browser;
let page: Page;
const consoleLines: string[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  upstreams = await startUpstreams();
  writeFileSync(join(tmp, 'keys'), `${KEY}\n`);
  gateway = await Gateway.create(
    parseConfig({
      model: 'completions',
      upstreams: [
        { name: 'stable', url: upstreams.stable, weight: 0.9 },
        { name: 'canary', url: upstreams.canary, weight: 0.1 },
      ],
      api_keys_file: join(tmp, 'keys'),
      feedback: { dir: feedbackDir },
      health: { interval_ms: 200, timeout_ms: 2000 },
    }),
    { logStream: new (await import('node:stream')).PassThrough() },
  );
  url = await gateway.listen('127.0.0.1', 0);
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
}, 1_800_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await upstreams?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function feedbackRecords(): FeedbackRecord[] {
  let files: string[] = [];
  try {
    files = readdirSync(feedbackDir);
  } catch {
    return [];
  }
  return files.flatMap((f) => readFileSync(join(feedbackDir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as FeedbackRecord));
}

const panel = (p: 'a' | 'b') => page.locator(`[data-panel="${p}"]`);

async function completeAndWait(): Promise<void> {
  for (const p of ['a', 'b'] as const) await panel(p).locator('.latency').evaluate((el) => (el.textContent = ''));
  await page.click('#complete');
  for (const p of ['a', 'b'] as const) await expect.poll(() => panel(p).locator('.latency').textContent(), { timeout: 60_000 }).toMatch(/^\d+ ms$/);
}

describe('the playground in Chromium', () => {
  it('is served under a strict CSP and loads with no inline script or style refused', async () => {
    const r = await page.goto(`${url}/`);
    expect(r?.status()).toBe(200);
    expect(r?.headers()['content-security-policy']).toMatch(/script-src 'self'/);
    expect(r?.headers()['content-security-policy']).not.toMatch(/unsafe-inline/);
    await page.fill('#api-key', KEY);
    await page.dispatchEvent('#api-key', 'change');
    await expect.poll(() => page.locator('#model-a option').allTextContents()).toEqual(['completions', 'completions@stable', 'completions@canary']);
    expect(await page.inputValue('#model-a')).toBe('completions@stable');
    expect(await page.inputValue('#model-b')).toBe('completions@canary');
    // The key stays in this tab's session storage, nowhere else.
    expect(await page.evaluate(() => sessionStorage.getItem('kiln.playground.apiKey'))).toBe(KEY);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(consoleLines.filter((l) => /Refused|Content Security Policy|pageerror/.test(l))).toEqual([]);
  });

  it('completes a prompt with both versions side by side, each with its latency and upstream', async () => {
    await page.uncheck('#infill');
    await page.fill('#prompt', 'def fibonacci(n):\n    ');
    await page.fill('#max-tokens', '16');
    await page.fill('#temperature', '0');
    await page.fill('#seed', '7');
    await completeAndWait();
    expect(await panel('a').locator('.upstream').textContent()).toBe('stable');
    expect(await panel('b').locator('.upstream').textContent()).toBe('canary');
    expect(await panel('a').locator('.error').textContent()).toBe('');
    expect(await panel('b').locator('.error').textContent()).toBe('');
    // The echo model answers the prompt back.
    expect(await panel('b').locator('.completion').textContent()).toMatch(/^def fib/);
    expect(await panel('a').locator('.finish').textContent()).toMatch(/^(stop|length)$/);
    expect(await panel('a').locator('.tokens').textContent()).toMatch(/^\d+ in, \d+ out$/);
  });

  it('infills at the cursor (the text after it is the suffix), and accept records that feedback with its context', async () => {
    const before = 'def add(a, b):\n    ';
    const after = '\n\nprint(add(1, 2))\n';
    await page.check('#infill');
    await page.fill('#prompt', before + after);
    await page.locator('#prompt').evaluate((el, at) => {
      const t = el as HTMLTextAreaElement;
      t.focus();
      t.setSelectionRange(at, at);
      t.dispatchEvent(new Event('select'));
    }, before.length);
    expect(await page.textContent('#cursor')).toBe(`cursor at ${before.length}: prompt ${before.length} chars, suffix ${after.length} chars`);
    await completeAndWait();
    expect(await page.textContent('#status')).toBe(`infilled at ${before.length}`);
    const id = await panel('a').getAttribute('data-completion-id');
    const text = (await panel('a').locator('.completion').textContent()) ?? '';
    expect(id).toMatch(/^cmpl-/);
    await panel('a').locator('.accept').click();
    await expect.poll(() => panel('a').locator('.feedback-status').textContent()).toBe('accepted: recorded');
    const rec = feedbackRecords().find((r) => r.completion_id === id);
    expect(rec).toMatchObject({ outcome: 'accepted', version: 'stable', context: { prompt: before, suffix: after, completion: text } });
    // The accepted completion went into the code at the cursor.
    expect(await page.inputValue('#prompt')).toBe(before + text + after);
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('shows a completion of markup as literal text and runs none of it', async () => {
    const markup = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';
    await page.uncheck('#infill');
    await page.fill('#prompt', markup);
    await page.fill('#max-tokens', '128');
    await completeAndWait();
    const shown = await panel('b').locator('.completion').textContent();
    expect(shown).toContain(markup);
    expect(await panel('b').locator('.completion').evaluate((el) => el.childElementCount)).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('img').length)).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('script:not([src])').length)).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    // Reject goes to the log too.
    const id = await panel('b').getAttribute('data-completion-id');
    await panel('b').locator('.reject').click();
    await expect.poll(() => panel('b').locator('.feedback-status').textContent()).toBe('rejected: recorded');
    expect(feedbackRecords().find((r) => r.completion_id === id)).toMatchObject({ outcome: 'rejected', version: 'canary', context: { prompt: markup } });
    expect(consoleLines.filter((l) => /pageerror/.test(l))).toEqual([]);
  });
});
