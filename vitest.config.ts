import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // virsh define and domain starts take tens of seconds on a loaded 2-core host.
    testTimeout: 300_000,
    hookTimeout: 180_000,
    // Tests that share libvirtd, RGW and the 2-core machine run one file at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
