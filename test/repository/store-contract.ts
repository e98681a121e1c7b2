/**
 * The ObjectStore contract as one vitest suite. Every store test file calls
 * runStoreContract with a factory that returns an empty store for each test.
 */
import { randomBytes } from 'node:crypto';

import { beforeEach, describe, expect, it } from 'vitest';

import { AlreadyExistsError, NotFoundError, RepositoryError } from '../../src/errors.js';
import type { ObjectInfo, ObjectStore } from '../../src/repository/store.js';

/** Returns a store with no objects, for one test. */
export type StoreFactory = () => Promise<ObjectStore> | ObjectStore;

export async function collect(iterable: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const items: ObjectInfo[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

export async function collectNames(iterable: AsyncIterable<string>): Promise<string[]> {
  const names: string[] = [];
  for await (const name of iterable) names.push(name);
  return names;
}

export const invalidKeys = ['', '/abs', 'a//b', 'a/', './a', 'a/./b', 'a/../b', '..', 'a\\b', 'nul\0byte', 'x'.repeat(1025)];

export function runStoreContract(name: string, makeStore: StoreFactory): void {
  describe(`${name} store contract`, () => {
    let store: ObjectStore;

    beforeEach(async () => {
      store = await makeStore();
    });

    it('put get binary round-trip', async () => {
      const body = Buffer.from(Array.from({ length: 512 }, (_, index) => index % 256));
      await store.put('blobs/binary', body);

      const read = await store.get('blobs/binary');
      expect(read.equals(body)).toBe(true);
    });

    it('put get empty object', async () => {
      await store.put('empty', Buffer.alloc(0));

      const read = await store.get('empty');
      expect(read.length).toBe(0);
      const info = await store.head('empty');
      expect(info?.size).toBe(0);
    });

    it('put get 17 MiB object', async () => {
      const body = randomBytes(17 * 1024 * 1024);
      await store.put('large/segment', body);

      const read = await store.get('large/segment');
      expect(read.length).toBe(body.length);
      expect(read.equals(body)).toBe(true);
    });

    it('getInto fills exact target', async () => {
      const body = randomBytes(17 * 1024 * 1024);
      await store.put('large/segment', body);

      const target = Buffer.alloc(body.length);
      const size = await store.getInto('large/segment', target);
      expect(size).toBe(body.length);
      expect(target.equals(body)).toBe(true);
    });

    it('getInto reuses one target', async () => {
      const first = randomBytes(4096);
      const second = randomBytes(4096);
      await store.put('reuse/first', first);
      await store.put('reuse/second', second);

      const target = Buffer.alloc(4096);
      await store.getInto('reuse/first', target);
      expect(target.equals(first)).toBe(true);
      await store.getInto('reuse/second', target);
      expect(target.equals(second)).toBe(true);
    });

    it('getInto larger target', async () => {
      const body = randomBytes(1000);
      await store.put('short', body);

      const target = Buffer.alloc(1500, 0xee);
      const size = await store.getInto('short', target);
      expect(size).toBe(1000);
      expect(target.subarray(0, 1000).equals(body)).toBe(true);
      expect(target.subarray(1000).every((byte) => byte === 0xee)).toBe(true);
    });

    it('getInto smaller target', async () => {
      const body = randomBytes(5 * 1024 * 1024);
      await store.put('long', body);

      const target = Buffer.alloc(1024 * 1024);
      const size = await store.getInto('long', target);
      expect(size).toBeGreaterThan(target.length);
    });

    it('getInto empty object', async () => {
      await store.put('empty', Buffer.alloc(0));

      expect(await store.getInto('empty', Buffer.alloc(16))).toBe(0);
      expect(await store.getInto('empty', Buffer.alloc(0))).toBe(0);
    });

    it('getInto of missing key', async () => {
      const failure = await store.getInto('missing/object', Buffer.alloc(16)).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(NotFoundError);
      expect((failure as NotFoundError).key).toBe('missing/object');
    });

    it('put accepts Uint8Array body', async () => {
      await store.put('typed', new Uint8Array([1, 2, 3]));

      const read = await store.get('typed');
      expect([...read]).toEqual([1, 2, 3]);
    });

    it('head returns size and time', async () => {
      const before = Date.now();
      await store.put('meta/object', Buffer.from('twelve bytes'));

      const info = await store.head('meta/object');
      expect(info?.key).toBe('meta/object');
      expect(info?.size).toBe(12);
      // Servers store seconds only, and clocks differ a little between hosts.
      expect(Math.abs((info?.lastModified.getTime() ?? 0) - before)).toBeLessThan(60_000);
    });

    it('head of missing key', async () => {
      const info = await store.head('missing/object');
      expect(info).toBeUndefined();
    });

    it('get of missing key', async () => {
      const failure = await store.get('missing/object').catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(NotFoundError);
      expect((failure as NotFoundError).key).toBe('missing/object');
    });

    it('put overwrites without ifNoneMatch', async () => {
      await store.put('mutable', Buffer.from('first'));
      await store.put('mutable', Buffer.from('second'));

      const read = await store.get('mutable');
      expect(read.toString()).toBe('second');
    });

    it('ifNoneMatch rejects existing key', async () => {
      await store.put('once', Buffer.from('first'), { ifNoneMatch: true });

      const failure = await store.put('once', Buffer.from('second'), { ifNoneMatch: true }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(AlreadyExistsError);
      expect((failure as AlreadyExistsError).key).toBe('once');
      const read = await store.get('once');
      expect(read.toString()).toBe('first');
    });

    it('ifNoneMatch writes new key', async () => {
      await store.put('fresh/key', Buffer.from('content'), { ifNoneMatch: true });

      const read = await store.get('fresh/key');
      expect(read.toString()).toBe('content');
    });

    it('put with aborted signal', async () => {
      const controller = new AbortController();
      controller.abort();

      const failure = await store.put('aborted', Buffer.from('x'), { signal: controller.signal }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(Error);
      expect(await store.head('aborted')).toBeUndefined();
    });

    it('list is recursive and sorted', async () => {
      const keys = ['vm/b/2', 'vm/a', 'vm/b/1', 'vm/c/d/e', 'vm/B', 'vm/é', 'other/x', 'vmx'];
      for (const key of keys) await store.put(key, Buffer.from(key));

      const listed = (await collect(store.list('vm/'))).map((info) => info.key);
      expect(listed).toEqual(['vm/B', 'vm/a', 'vm/b/1', 'vm/b/2', 'vm/c/d/e', 'vm/é']);
    });

    it('list prefix matches partial segment', async () => {
      for (const key of ['a/b', 'a/bc/d', 'a/c', 'ab']) await store.put(key, Buffer.from(key));

      const listed = (await collect(store.list('a/b'))).map((info) => info.key);
      expect(listed).toEqual(['a/b', 'a/bc/d']);
    });

    it('list with empty prefix', async () => {
      for (const key of ['z', 'm/n', 'a']) await store.put(key, Buffer.from(key));

      const listed = (await collect(store.list(''))).map((info) => info.key);
      expect(listed).toEqual(['a', 'm/n', 'z']);
    });

    it('list reports sizes', async () => {
      await store.put('sizes/three', Buffer.from('abc'));

      const [info] = await collect(store.list('sizes/'));
      expect(info?.size).toBe(3);
    });

    it('list of missing prefix', async () => {
      const listed = await collect(store.list('nothing/here/'));
      expect(listed).toEqual([]);
    });

    it('list crosses page boundaries', async () => {
      const keys = Array.from({ length: 25 }, (_, index) => `pages/${String(index).padStart(3, '0')}`);
      await Promise.all(keys.map((key) => store.put(key, Buffer.from(key))));

      const listed = (await collect(store.list('pages/'))).map((info) => info.key);
      expect(listed).toEqual(keys);
    });

    it('listDirectories lists one level', async () => {
      const keys = ['vm/b/2', 'vm/a', 'vm/b/1', 'vm/c/d/e', 'vm/B/x', 'vm/é/y', 'other/x', 'vmx/y'];
      for (const key of keys) await store.put(key, Buffer.from(key));

      expect(await collectNames(store.listDirectories('vm/'))).toEqual(['B', 'b', 'c', 'é']);
      expect(await collectNames(store.listDirectories(''))).toEqual(['other', 'vm', 'vmx']);
      expect(await collectNames(store.listDirectories('vm/c/'))).toEqual(['d']);
    });

    it('listDirectories crosses page boundaries', async () => {
      const names = Array.from({ length: 25 }, (_, index) => String(index).padStart(3, '0'));
      await Promise.all(names.map((name) => store.put(`dirs/${name}/object`, Buffer.from(name))));

      expect(await collectNames(store.listDirectories('dirs/'))).toEqual(names);
    });

    it('listDirectories of missing prefix', async () => {
      expect(await collectNames(store.listDirectories('nothing/here/'))).toEqual([]);
    });

    it('listDirectories rejects prefix without slash', async () => {
      const failure = await collectNames(store.listDirectories('vm')).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(RepositoryError);
      expect((failure as Error).message).toContain("does not end with '/'");
    });

    it('delete reports deleted keys', async () => {
      await store.put('gone/1', Buffer.from('1'));
      await store.put('gone/2', Buffer.from('2'));
      await store.put('kept', Buffer.from('3'));

      const result = await store.delete(['gone/1', 'gone/2']);
      expect([...result.deleted].sort()).toEqual(['gone/1', 'gone/2']);
      expect(result.failed).toEqual([]);
      expect(await store.head('gone/1')).toBeUndefined();
      expect(await store.head('kept')).toBeDefined();
    });

    it('delete of missing key', async () => {
      const result = await store.delete(['never/written']);
      expect(result.deleted).toEqual(['never/written']);
      expect(result.failed).toEqual([]);
    });

    it('delete of no keys', async () => {
      const result = await store.delete([]);
      expect(result).toEqual({ deleted: [], failed: [] });
    });

    it('description names the store', () => {
      expect(store.description.length).toBeGreaterThan(0);
    });

    describe('invalid keys', () => {
      for (const key of invalidKeys) {
        const label = JSON.stringify(key.length > 20 ? `${key.slice(0, 10)}… (${key.length} chars)` : key);

        it(`rejects ${label}`, async () => {
          const failures = await Promise.all([
            store.put(key, Buffer.from('x')).catch((error: unknown) => error),
            store.get(key).catch((error: unknown) => error),
            store.getInto(key, Buffer.alloc(1)).catch((error: unknown) => error),
            store.head(key).catch((error: unknown) => error),
            store.delete([key]).catch((error: unknown) => error),
          ]);
          for (const failure of failures) {
            expect(failure).toBeInstanceOf(RepositoryError);
            expect(failure).not.toBeInstanceOf(NotFoundError);
            expect((failure as Error).message).toContain('invalid object key');
          }
        });
      }

      it('list rejects invalid prefix', async () => {
        const failure = await collect(store.list('a//b')).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(RepositoryError);
      });
    });
  });
}
