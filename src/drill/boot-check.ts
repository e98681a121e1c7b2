/**
 * The boot check of a sandbox domain: `virsh start`, then poll `domstate`
 * until it reports "running", and optionally until the QEMU guest agent
 * answers guest-ping. The guest agent proves that a guest OS booted far
 * enough to start its services; "running" alone only proves that QEMU
 * accepted the restored disks and definition.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { Domains } from '../libvirt/domain.js';
import type { Virsh } from '../libvirt/virsh.js';
import type { BootCheckResult } from './report.js';
import type { BootCheckSettings } from './settings.js';

const STATE_POLL_MS = 100;
const AGENT_POLL_MS = 1000;
const GUEST_PING = JSON.stringify({ execute: 'guest-ping' });

export interface BootCheckOutcome {
  check: BootCheckResult;
  /** When the check passed (or gave up), for the RTO. */
  finishedAt: number;
  /** Why the check failed, without the domain name; undefined when it passed. */
  failure?: string;
}

export async function checkBoot(
  libvirt: { domains: Domains; virsh: Virsh },
  name: string,
  settings: BootCheckSettings,
  signal: AbortSignal,
): Promise<BootCheckOutcome> {
  const check: BootCheckResult = { running: false, runningSeconds: null, guestAgent: 'not-checked' };
  const startedAt = Date.now();
  await libvirt.domains.start(name);

  let state = await libvirt.domains.state(name);
  const runningDeadline = startedAt + settings.runningTimeoutSeconds * 1000;
  while (state !== 'running' && Date.now() < runningDeadline) {
    await sleep(STATE_POLL_MS, undefined, { signal });
    state = await libvirt.domains.state(name);
  }
  if (state !== 'running') {
    return {
      check,
      finishedAt: Date.now(),
      failure: `domain did not reach "running" within ${settings.runningTimeoutSeconds} s (state: ${state})`,
    };
  }
  check.running = true;
  check.runningSeconds = (Date.now() - startedAt) / 1000;
  if (!settings.guestAgent) return { check, finishedAt: Date.now() };

  const agentDeadline = Date.now() + settings.guestAgentTimeoutSeconds * 1000;
  let lastError = 'no attempt';
  for (;;) {
    const remaining = Math.ceil((agentDeadline - Date.now()) / 1000);
    if (remaining <= 0) break;
    try {
      // --timeout bounds how long libvirt waits for one answer, in seconds.
      await libvirt.virsh.run(['qemu-agent-command', name, GUEST_PING, '--timeout', String(Math.min(remaining, 5))], { domain: name });
      check.guestAgent = 'answered';
      return { check, finishedAt: Date.now() };
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (Date.now() + AGENT_POLL_MS >= agentDeadline) break;
    await sleep(AGENT_POLL_MS, undefined, { signal });
  }

  check.guestAgent = 'no-answer';
  return {
    check,
    finishedAt: Date.now(),
    failure: `guest agent did not answer guest-ping within ${settings.guestAgentTimeoutSeconds} s (last error: ${lastError})`,
  };
}
