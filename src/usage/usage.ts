/** Repository usage: bytes and backup counts per host and domain, from one listing of hosts/. */
import type { ObjectStore } from '../repository/store.js';
import { listBackups } from '../restore/catalog.js';

export interface DomainUsage {
  host: string;
  domain: string;
  /** Committed backups. */
  backups: number;
  /** Prefixes without a manifest: interrupted or still running backups. */
  unfinished: number;
  /** Bytes of every object under the domain's backups, unfinished ones included. */
  bytes: number;
}

export interface RepositoryUsage {
  domains: DomainUsage[];
  backups: number;
  unfinished: number;
  bytes: number;
}

/** Sums the backups under hosts/, sorted by host and domain. Objects outside hosts/ (keys/, the marker) are not counted. */
export async function summarizeUsage(store: ObjectStore): Promise<RepositoryUsage> {
  const byDomain = new Map<string, DomainUsage>();

  for (const entry of await listBackups(store)) {
    const key = `${entry.host}/${entry.domain}`;
    let usage = byDomain.get(key);
    if (!usage) {
      usage = { host: entry.host, domain: entry.domain, backups: 0, unfinished: 0, bytes: 0 };
      byDomain.set(key, usage);
    }
    if (entry.committed) usage.backups += 1;
    else usage.unfinished += 1;
    usage.bytes += entry.bytes;
  }

  const domains = [...byDomain.keys()].sort().map((key) => byDomain.get(key)!);
  return {
    domains,
    backups: domains.reduce((sum, usage) => sum + usage.backups, 0),
    unfinished: domains.reduce((sum, usage) => sum + usage.unfinished, 0),
    bytes: domains.reduce((sum, usage) => sum + usage.bytes, 0),
  };
}
