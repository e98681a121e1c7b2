export { Virsh, VirshCommandError, isDomainNotFound, DEFAULT_URI, DEFAULT_TIMEOUT_MS, type VirshOptions, type VirshRunOptions } from './virsh.js';
export { parseDomainXml, backupDisks, type DiskInfo, type DomainInfo } from './domain.js';
export { Domains } from './domains.js';
export { PullBackupJob, findActiveBackupJob, type PullBackupOptions } from './backup-job.js';
export { prepareJobDirectory, qemuGroupId } from './job-directory.js';
export { listCheckpoints, deleteCheckpoint, checkpointXml, type CheckpointInfo } from './checkpoints.js';
export { rewriteDomainXml, randomMac, type RewriteOptions } from './clone.js';
