/** Server-sent events, read: Triton's generate_stream (upstream.ts) and the gateway's own stream (kiln complete). */

/** The `data:` lines of one event, joined with newlines ('' when it has none). */
function dataOf(event: string): string {
  return event
    .split('\n')
    .filter((l) => l.startsWith('data:'))
    .map((l) => l.slice(5).replace(/^ /, ''))
    .join('\n');
}

/**
 * The data of each event of a byte stream, as it comes: events end with a blank line; a last event cut off by
 * the end of the stream still counts. Bytes are decoded as one UTF-8 stream, so a character split between two
 * chunks stays whole.
 */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const data = dataOf(buf.slice(0, end));
      buf = buf.slice(end + 2);
      if (data !== '') yield data;
    }
  }
  const data = dataOf((buf + decoder.decode()).trim());
  if (data !== '') yield data;
}
