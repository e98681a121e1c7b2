/**
 * Helpers shared by the archive tests: building archives in memory, making
 * deterministic content, and running GNU tar in temporary directories.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { ArchiveEntry } from '../../src/archive/reader.js';
import { ArchiveWriter, type Extent } from '../../src/archive/writer.js';

/** Reads a whole byte stream into one Buffer. */
export async function collect(input: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Runs `build` on a new writer while collecting its output, then finalizes. */
export async function buildArchive(build: (writer: ArchiveWriter) => Promise<void>, mtime = new Date('2024-01-02T03:04:05Z')): Promise<Buffer> {
  const writer = new ArchiveWriter({ mtime });
  const output = collect(writer.stream);
  await build(writer);
  await writer.finalize();
  return output;
}

/** Deterministic bytes that differ for each seed and position, so misplaced data shows. */
export function patternBytes(seed: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let state = (seed * 2654435761) >>> 0;
  for (let i = 0; i < length; i += 1) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

/** Content of each extent: patternBytes seeded by the extent index. */
export function extentContents(extents: readonly Extent[]): Buffer[] {
  return extents.map((extent, index) => patternBytes(index + 1, extent.length));
}

/** Yields the contents split into chunks of `chunkSize` bytes, crossing extent boundaries. */
export async function* chunked(contents: readonly Buffer[], chunkSize: number): AsyncGenerator<Buffer> {
  const all = Buffer.concat(contents);
  for (let offset = 0; offset < all.length; offset += chunkSize) {
    yield all.subarray(offset, offset + chunkSize);
  }
}

/** Creates a deterministic PRNG (mulberry32) for reproducible mutation tests. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Creates a temporary directory and returns it with a function that removes it. */
export function temporaryDirectory(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'hvbackup-archive-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs a command and returns its stdout; a non-zero exit throws with stderr. */
export function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
}

/** Yields `data` in chunks of the given sizes, cycling through them, as views without copying. */
export async function* slices(data: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let position = 0;
  let index = 0;
  while (position < data.length) {
    const size = sizes[index % sizes.length]!;
    yield data.subarray(position, position + size);
    position += size;
    index += 1;
  }
}

export interface ReadResult {
  files: Map<string, Buffer>;
  /** Sparse members up to 256 MiB rebuilt into full images, holes as zeros. */
  images: Map<string, Buffer>;
  /** realSize of every sparse member. */
  realSizes: Map<string, number>;
}

/**
 * Reads every member of an archive, rebuilding sparse members in memory.
 * Only for small test archives.
 */
export async function readAll(entries: AsyncIterable<ArchiveEntry>): Promise<ReadResult> {
  const result: ReadResult = { files: new Map(), images: new Map(), realSizes: new Map() };
  for await (const entry of entries) {
    if (entry.kind === 'file') {
      result.files.set(entry.name, await entry.read());
      continue;
    }
    result.realSizes.set(entry.name, entry.realSize);
    const image = entry.realSize <= 256 * 1024 * 1024 ? Buffer.alloc(entry.realSize) : undefined;
    for await (const { offset, data } of entry.chunks()) image?.set(data, offset);
    if (image !== undefined) result.images.set(entry.name, image);
  }
  return result;
}
