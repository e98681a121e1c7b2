/**
 * Parses every .nix file and evaluates nix/module.nix and nix/package.nix
 * with the stub lib and pkgs of test/nix/eval-module.nix. nixpkgs is not
 * available here, so option types and the real NixOS module system are not
 * exercised. The evaluation covers option declarations, defaults and the
 * config that the module builds from units.json.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

import { toolsAvailable } from './gate.js';

const testDir = dirname(fileURLToPath(import.meta.url));
const nixDir = join(testDir, '..', '..', 'nix');
const nixFiles = [
  ...readdirSync(nixDir).filter((name) => name.endsWith('.nix')).map((name) => join(nixDir, name)),
  join(testDir, 'eval-module.nix'),
];

/** Evaluates test/nix/eval-module.nix with the given overrides (a Nix expression). */
function evaluate(overrides: string): any {
  const output = execFileSync(
    'nix-instantiate',
    ['--eval', '--strict', '--json', join(testDir, 'eval-module.nix'), '--arg', 'overrides', overrides],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return JSON.parse(output);
}

describe.runIf(toolsAvailable('nix-instantiate'))('nix expressions', () => {
  test.each(nixFiles)('nix-instantiate parses %s', (path) => {
    expect(() => execFileSync('nix-instantiate', ['--parse', path], { stdio: 'pipe' })).not.toThrow();
  });

  test('units.json evaluates with fromJSON', () => {
    const expression = `(builtins.fromJSON (builtins.readFile ${join(nixDir, 'units.json')})).units."hvbackup.timer".Timer.Persistent`;
    const output = execFileSync('nix-instantiate', ['--eval', '--json', '--expr', expression], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(JSON.parse(output)).toBe('true');
  });
});

describe.runIf(toolsAvailable('nix-instantiate'))('module evaluation', () => {
  const disabled = evaluate('{ }');
  const enabled = evaluate('{ enable = true; drill.enable = true; }');
  const custom = evaluate(`{
    enable = true;
    user = "backup";
    group = "backup";
    stateDir = "/srv/hvbackup";
    domains = [ "web" "db" ];
    mode = "full";
    schedule = "*-*-* 02:00:00";
    credentials.s3 = "/etc/hvbackup/s3.json";
    extraServiceConfig.ProtectKernelLogs = "false";
    settings.repository = { type = "local"; path = "/srv/repo"; };
  }`);
  const backupService = enabled.config.systemd.services.hvbackup;
  const customService = custom.config.systemd.services.hvbackup;
  const units = JSON.parse(readFileSync(join(nixDir, 'units.json'), 'utf8'));

  test.each([
    'enable',
    'package',
    'settings',
    'schedule',
    'randomizedDelaySec',
    'domains',
    'mode',
    'hostKeyFile',
    'credentials',
    'extraServiceConfig',
    'user',
    'group',
    'adminGroup',
    'libvirtAccessControl',
    'drill.enable',
    'drill.schedule',
    'drill.keyFile',
  ])('module declares option %s', (name) => {
    expect(enabled.options).toContain(name);
  });

  test('disabled module sets nothing', () => {
    expect(disabled.config).toEqual({});
  });

  test('service runs as backup user', () => {
    expect(backupService.serviceConfig.User).toBe('hvbackup');
  });

  test('service keeps generated sandboxing', () => {
    for (const [key, value] of Object.entries(units.hardening)) {
      expect(backupService.serviceConfig[key], key).toBe(value);
    }
  });

  test('service is a oneshot', () => {
    expect(backupService.serviceConfig.Type).toBe('oneshot');
  });

  test('service loads host key credential', () => {
    expect(backupService.serviceConfig.LoadCredential).toEqual(['host-key:/etc/hvbackup/host-key.asc']);
  });

  test('default command backs up all domains', () => {
    expect(backupService.serviceConfig.ExecStart).toBe(
      "'/nix/store/stub-hvbackup/bin/hvbackup' '--config' '/etc/hvbackup/config.json' 'backup' '--all' '--mode' 'auto'",
    );
  });

  test('timer is persistent with random delay', () => {
    const timer = enabled.config.systemd.timers.hvbackup.timerConfig;
    expect(timer.Persistent).toBe('true');
    expect(timer.RandomizedDelaySec).toBe('1h');
    expect(timer.OnCalendar).toBe('daily');
  });

  test('drill timer runs weekly', () => {
    expect(enabled.config.systemd.timers['hvbackup-drill'].timerConfig.OnCalendar).toBe('weekly');
  });

  test('drill service loads drill key', () => {
    expect(enabled.config.systemd.services['hvbackup-drill'].serviceConfig.LoadCredential).toEqual([
      'drill-key:/etc/hvbackup/drill-key.asc',
    ]);
  });

  test('module enables polkit access driver', () => {
    expect(enabled.config.virtualisation.libvirtd.extraConfig).toContain('access_drivers = [ "polkit" ]');
  });

  test('polkit rules reuse generated body', () => {
    expect(enabled.config.security.polkit.extraConfig.endsWith(units.polkit.body)).toBe(true);
  });

  test('polkit rules name NixOS admin group', () => {
    expect(enabled.config.security.polkit.extraConfig).toContain('"adminGroup":"libvirtd"');
  });

  test('module creates system users', () => {
    expect(enabled.config.users.users.hvbackup.isSystemUser).toBe(true);
    expect(enabled.config.users.users['hvbackup-drill'].isSystemUser).toBe(true);
  });

  test('QEMU user joins backup group', () => {
    expect(enabled.config.users.users['qemu-libvirtd'].extraGroups).toEqual(['hvbackup']);
  });

  test('default tmpfiles match plain file', () => {
    const plain = readFileSync(join(nixDir, 'dist', 'hvbackup.conf'), 'utf8').split('\n').filter((line) => line && !line.startsWith('#'));
    expect(enabled.config.systemd.tmpfiles.rules).toEqual(plain);
  });

  test('custom user owns custom directories', () => {
    expect(custom.config.systemd.tmpfiles.rules).toEqual([
      'd /srv/hvbackup 0750 backup backup -',
      'd /srv/hvbackup/scratch 2770 backup backup -',
      'd /srv/hvbackup/staging 0700 backup backup -',
      'd /var/log/hvbackup 0750 backup backup -',
    ]);
  });

  test('custom service writes custom directories', () => {
    expect(customService.serviceConfig.ReadWritePaths).toEqual(['/srv/hvbackup', '/srv/hvbackup/scratch', '/srv/hvbackup/staging']);
  });

  test('custom command lists domains', () => {
    expect(customService.serviceConfig.ExecStart).toContain("'backup' 'web' 'db' '--mode' 'full'");
  });

  test('custom credentials are loaded', () => {
    expect(customService.serviceConfig.LoadCredential).toContain('s3:/etc/hvbackup/s3.json');
  });

  test('extra service config overrides sandboxing', () => {
    expect(customService.serviceConfig.ProtectKernelLogs).toBe('false');
  });

  test('custom schedule reaches timer', () => {
    expect(custom.config.systemd.timers.hvbackup.timerConfig.OnCalendar).toBe('*-*-* 02:00:00');
  });

  test('config file gets sandbox paths', () => {
    const settings = JSON.parse(custom.config.environment.etc['hvbackup/config.json'].source);
    expect(settings.scratchDir).toBe('/srv/hvbackup/scratch');
    expect(settings.repository.path).toBe('/srv/repo');
  });

  test('drill disabled leaves no drill units', () => {
    expect(custom.config.systemd.services['hvbackup-drill']).toBeUndefined();
  });

  test('package builds with npm run build', () => {
    expect(enabled.package.npmBuildScript).toBe('build');
  });

  test('package wraps runtime dependencies', () => {
    expect(enabled.package.runtimeDeps).toEqual(['/nix/store/stub-libvirt', '/nix/store/stub-qemu-utils']);
    expect(enabled.package.postInstall).toContain('wrapProgram $out/bin/hvbackup');
  });
});
