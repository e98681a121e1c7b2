/** Describes the machine and the versions of every program the benchmark runs, for the record in docs/benchmarks.md. */
import { cpus, totalmem } from 'node:os';

import { AWS } from './services.mjs';
import { bash } from './shell.mjs';

async function firstLine(script) {
  try {
    return (await bash(`${script} 2>&1`)).trim().split('\n')[0];
  } catch {
    return 'not installed';
  }
}

export async function describeMachine() {
  return {
    cores: (await bash('nproc')).trim(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: (totalmem() / 1024 ** 3).toFixed(1),
    kernel: (await bash('uname -r')).trim(),
    node: process.version,
    versions: {
      qemu: await firstLine('qemu-system-x86_64 --version'),
      libvirt: await firstLine("virsh -c qemu:///system version | grep 'Using library'"),
      gpg: await firstLine('gpg --version'),
      restic: await firstLine('restic version'),
      aws: await firstLine(`${AWS} --version`),
      virtnbdbackup: await firstLine('virtnbdbackup --version'),
      nbdcopy: await firstLine('nbdcopy --version'),
      radosgw: await firstLine('radosgw --version'),
    },
  };
}
