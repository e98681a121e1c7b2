/** Thin wrappers over virsh for the domain operations hvbackup needs. */
import { LibvirtError } from '../errors.js';
import { withTempFile } from './temp-file.js';
import { isDomainNotFound, VirshCommandError, type Virsh } from './virsh.js';
import { parseXml, textOf, firstChild } from './xml.js';

function nameInXml(xml: string): string | undefined {
  try {
    return textOf(firstChild(parseXml(xml, 'domain XML').documentElement!, 'name'));
  } catch {
    return undefined;
  }
}

export class Domains {
  constructor(private readonly virsh: Virsh) {}

  /** Returns the domain names: running ones, or all defined ones with `all`. */
  async list(options: { all?: boolean } = {}): Promise<string[]> {
    const args = ['list', '--name'];
    if (options.all) args.push('--all');

    const output = await this.virsh.run(args);
    return output.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  }

  async exists(name: string): Promise<boolean> {
    try {
      await this.virsh.run(['domuuid', name], { domain: name });
      return true;
    } catch (error) {
      if (isDomainNotFound(error)) return false;
      throw error;
    }
  }

  /** Returns the state as virsh domstate prints it: `running`, `shut off`, `paused`, ... */
  async state(name: string): Promise<string> {
    return (await this.virsh.run(['domstate', name], { domain: name })).trim();
  }

  async dumpXml(name: string, options: { inactive?: boolean; securityInfo?: boolean } = {}): Promise<string> {
    const args = ['dumpxml'];
    if (options.inactive) args.push('--inactive');
    if (options.securityInfo) args.push('--security-info');
    args.push(name);
    return this.virsh.run(args, { domain: name });
  }

  /** Defines (or redefines) a persistent domain from XML, passed to virsh through a private temporary file. */
  async define(xml: string): Promise<void> {
    const domain = nameInXml(xml);
    await withTempFile('domain.xml', xml, (path) => this.virsh.run(['define', path], { domain }));
  }

  /**
   * Removes the domain definition. `nvram` also deletes the NVRAM file, and
   * `checkpointsMetadata` drops libvirt's checkpoint records (the bitmaps in
   * the disk images stay). libvirt refuses to undefine a domain with
   * checkpoints unless `checkpointsMetadata` is set.
   */
  async undefine(name: string, options: { nvram?: boolean; checkpointsMetadata?: boolean } = {}): Promise<void> {
    const args = ['undefine', name];
    if (options.nvram) args.push('--nvram');
    if (options.checkpointsMetadata) args.push('--checkpoints-metadata');
    await this.virsh.run(args, { domain: name });
  }

  async start(name: string): Promise<void> {
    await this.virsh.run(['start', name], { domain: name });
  }

  /** Stops the domain at once, like pulling the power plug. A domain that is not running is not an error. */
  async destroy(name: string): Promise<void> {
    try {
      await this.virsh.run(['destroy', name], { domain: name });
    } catch (error) {
      if (error instanceof VirshCommandError && error.stderr.includes('domain is not running')) return;
      throw error;
    }
  }

  async uuid(name: string): Promise<string> {
    const uuid = (await this.virsh.run(['domuuid', name], { domain: name })).trim();
    if (uuid === '') throw new LibvirtError(`virsh domuuid returned no UUID for domain '${name}'`);
    return uuid;
  }
}
