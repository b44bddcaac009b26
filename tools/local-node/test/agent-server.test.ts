/** The kubelet API's pure parts: log query parsing and tailLines, and image names. */
import { describe, expect, it } from 'vitest';
import { parseLogQuery, tailStart } from '../src/agent/server.ts';
import { imageKind, repository, unknownImageMessage } from '../src/agent/images.ts';

describe('containerLogs query', () => {
  it('parses follow, tailLines, limitBytes, previous, sinceSeconds', () => {
    expect(parseLogQuery(new URLSearchParams('follow=true&tailLines=5&limitBytes=100&previous=true&sinceSeconds=30'))).toEqual({ follow: true, previous: true, timestamps: false, tailLines: 5, limitBytes: 100, sinceSeconds: 30 });
    expect(() => parseLogQuery(new URLSearchParams('tailLines=-1'))).toThrow(/tailLines=-1/);
  });
  it('tailLines counts lines from the end, a final newline not starting one', () => {
    const b = Buffer.from('a\nb\nc\n');
    expect(b.subarray(tailStart(b, 2)).toString()).toBe('b\nc\n');
    expect(b.subarray(tailStart(b, 10)).toString()).toBe('a\nb\nc\n');
    expect(b.subarray(tailStart(b, 0)).toString()).toBe('');
    const partial = Buffer.from('a\nb\nc');
    expect(partial.subarray(tailStart(partial, 1)).toString()).toBe('c');
  });
});

describe('images', () => {
  it('matches kiln\'s images by repository, any tag or digest, and the Triton image', () => {
    expect(repository('kiln/trainer:0.1.0@sha256:abc')).toBe('kiln/trainer');
    expect(repository('docker.io/kiln/gateway')).toBe('kiln/gateway');
    expect(repository('localhost:5000/kiln/x:1')).toBe('localhost:5000/kiln/x');
    expect(imageKind('kiln/data-prep:0.1.0')).toBe('node');
    expect(imageKind('kiln/trainer@sha256:0')).toBe('trainer');
    expect(imageKind('nvcr.io/nvidia/tritonserver:24.08-trtllm-python-py3')).toBe('triton');
    expect(imageKind('busybox:1.36')).toBeUndefined();
  });
  it('names the images it can run when it cannot run one', () => {
    expect(unknownImageMessage('busybox')).toMatch(/cannot run image "busybox".*kiln\/data-prep.*nvcr\.io\/nvidia\/tritonserver/);
  });
});
