import { describe, expect, it } from 'vitest';
import { sseData } from '../src/sse.ts';

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? new TextEncoder().encode(p) : p;
}
async function all(body: AsyncIterable<Uint8Array>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of sseData(body)) out.push(d);
  return out;
}

describe('sseData', () => {
  it('yields each event’s data as it is completed, across chunk boundaries', async () => {
    expect(await all(chunks('data: {"a":1}\n', '\ndata: {"b"', ':2}\n\n: a comment\n\n'))).toEqual(['{"a":1}', '{"b":2}']);
  });

  it('keeps a character whose UTF-8 bytes are split between two chunks whole', async () => {
    const bytes = new TextEncoder().encode('data: "é→😀"\n\n');
    const cut = 8; // inside "é" (bytes 7 and 8)
    expect(await all(chunks(bytes.slice(0, cut), bytes.slice(cut)))).toEqual(['"é→😀"']);
  });

  it('joins multi-line data, reads CRLF line ends, and keeps a last event the stream cut off', async () => {
    expect(await all(chunks('data: one\r\ndata: two\r\n\r\n', 'data: [DONE]'))).toEqual(['one\ntwo', '[DONE]']);
  });
});
