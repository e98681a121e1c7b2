/**
 * Service definitions for hvbackup: systemd units, tmpfiles.d rules and the
 * polkit rules for libvirt. This file is the only place they are written.
 * nix/generate.mjs renders it into plain files under nix/dist/ and into
 * nix/units.json, which nix/module.nix reads, so NixOS and other
 * distributions get the same units.
 *
 * Unit sections map a key to a string, or to an array of strings for a key
 * that systemd accepts several times. Paths and names here are the defaults
 * for a plain install; the NixOS module replaces them from its options.
 */

/** Default users, groups and paths of a plain install. */
export const defaults = {
  user: 'hvbackup',
  group: 'hvbackup',
  drillUser: 'hvbackup-drill',
  drillGroup: 'hvbackup-drill',
  // Members of this group get full libvirt access from the polkit rules.
  // Debian, Ubuntu, Fedora and RHEL name the libvirt socket group "libvirt";
  // NixOS names it "libvirtd" and the module sets that.
  adminGroup: 'libvirt',
  drillDomainPrefix: 'drill-',
  binary: '/usr/bin/hvbackup',
  configFile: '/etc/hvbackup/config.json',
  hostKeyFile: '/etc/hvbackup/host-key.asc',
  drillKeyFile: '/etc/hvbackup/drill-key.asc',
  stateDir: '/var/lib/hvbackup',
  scratchDir: '/var/lib/hvbackup/scratch',
  stagingDir: '/var/lib/hvbackup/staging',
  drillDir: '/var/lib/hvbackup-drill',
  logDir: '/var/log/hvbackup',
  drillLogDir: '/var/log/hvbackup-drill',
  schedule: 'daily',
  randomizedDelaySec: '1h',
  drillSchedule: 'weekly',
  mode: 'auto',
};

/**
 * Sandboxing shared by the backup and the drill service. The NixOS option
 * extraServiceConfig overrides single keys.
 */
export const hardening = {
  ProtectSystem: 'strict',
  ProtectHome: 'true',
  PrivateTmp: 'true',
  PrivateDevices: 'true',
  NoNewPrivileges: 'true',
  CapabilityBoundingSet: '',
  AmbientCapabilities: '',
  RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
  RestrictNamespaces: 'true',
  RestrictRealtime: 'true',
  RestrictSUIDSGID: 'true',
  LockPersonality: 'true',
  ProtectKernelTunables: 'true',
  ProtectKernelModules: 'true',
  ProtectKernelLogs: 'true',
  ProtectControlGroups: 'true',
  ProtectClock: 'true',
  ProtectHostname: 'true',
  ProtectProc: 'invisible',
  RemoveIPC: 'true',
  SystemCallArchitectures: 'native',
  SystemCallFilter: '@system-service',
  // Node.js (libuv) probes io_uring and falls back when the call fails with
  // EPERM; without this line the filter would kill the process instead.
  SystemCallErrorNumber: 'EPERM',
  // MemoryDenyWriteExecute is left out on purpose: the V8 JIT needs
  // writable and executable memory.
  // 0027 rather than 0077 so that the group bits of directories the job
  // creates under the setgid scratch directory reach QEMU, which is a member
  // of the backup group.
  UMask: '0027',
};

/** Commands of the two services, as arguments after the binary. */
export function backupArguments(configFile, mode) {
  return ['--config', configFile, 'backup', '--all', '--mode', mode];
}

export function drillArguments(configFile) {
  return ['--config', configFile, 'drill', '--all'];
}

/** Returns the systemd units of a plain install, keyed by file name. */
export function units(values = defaults) {
  const backupCommand = [values.binary, ...backupArguments(values.configFile, values.mode)].join(' ');
  const drillCommand = [values.binary, ...drillArguments(values.configFile)].join(' ');

  return {
    'hvbackup.service': {
      Unit: {
        Description: 'Encrypted backup of libvirt domains (hvbackup)',
        Wants: 'network-online.target',
        After: ['network-online.target', 'libvirtd.service', 'virtqemud.service'],
      },
      Service: {
        Type: 'oneshot',
        User: values.user,
        Group: values.group,
        ExecStart: backupCommand,
        // The host signing key stays readable by root only; systemd copies
        // it into $CREDENTIALS_DIRECTORY for this run of the service.
        LoadCredential: `host-key:${values.hostKeyFile}`,
        ReadWritePaths: [values.stateDir, values.scratchDir, values.stagingDir, values.logDir],
        // Lock files of the running job live in /run/hvbackup.
        RuntimeDirectory: 'hvbackup',
        Nice: '10',
        IOSchedulingClass: 'idle',
        ...hardening,
      },
    },
    'hvbackup.timer': {
      Unit: {
        Description: 'Nightly encrypted backup of libvirt domains (hvbackup)',
      },
      Timer: {
        OnCalendar: values.schedule,
        RandomizedDelaySec: values.randomizedDelaySec,
        Persistent: 'true',
      },
      Install: {
        WantedBy: 'timers.target',
      },
    },
    'hvbackup-drill.service': {
      Unit: {
        Description: 'Restore drill of the latest hvbackup backups into drill- domains',
        Wants: 'network-online.target',
        After: ['network-online.target', 'libvirtd.service', 'virtqemud.service', 'hvbackup.service'],
      },
      Service: {
        Type: 'oneshot',
        User: values.drillUser,
        Group: values.drillGroup,
        ExecStart: drillCommand,
        LoadCredential: `drill-key:${values.drillKeyFile}`,
        // The drill user keeps its own audit trail: it cannot write the backup user's.
        Environment: `HVBACKUP_AUDIT_FILE=${values.drillLogDir}/audit.jsonl`,
        ReadWritePaths: [values.drillDir, values.drillLogDir],
        RuntimeDirectory: 'hvbackup-drill',
        Nice: '10',
        IOSchedulingClass: 'idle',
        ...hardening,
      },
    },
    'hvbackup-drill.timer': {
      Unit: {
        Description: 'Weekly restore drill of hvbackup backups',
      },
      Timer: {
        OnCalendar: values.drillSchedule,
        RandomizedDelaySec: values.randomizedDelaySec,
        Persistent: 'true',
      },
      Install: {
        WantedBy: 'timers.target',
      },
    },
  };
}

/**
 * Returns tmpfiles.d lines as [type, path, mode, user, group, age].
 * The scratch directory is setgid to the backup group so that files and
 * sockets QEMU creates there belong to that group; QEMU's own user must be a
 * member of the group to enter it.
 */
export function tmpfiles(values = defaults) {
  return [
    ['d', values.stateDir, '0750', values.user, values.group, '-'],
    ['d', values.scratchDir, '2770', values.user, values.group, '-'],
    ['d', values.stagingDir, '0700', values.user, values.group, '-'],
    ['d', values.drillDir, '0750', values.drillUser, values.drillGroup, '-'],
    ['d', values.logDir, '0750', values.user, values.group, '-'],
    ['d', values.drillLogDir, '0750', values.drillUser, values.drillGroup, '-'],
  ];
}

/**
 * libvirt polkit actions the backup user needs, each with the libvirt 9.0
 * API calls that check it. The mapping was read from the access checks that
 * libvirt 9.0.0 (Debian 12) compiles into libvirt.so.0 (the
 * vir*EnsureACL functions), so it is the version's real behaviour.
 */
export const backupActions = {
  'org.libvirt.unix.manage': 'read-write connection to the libvirt socket',
  'org.libvirt.api.connect.getattr': 'virConnectOpen, virConnectGetLibVersion',
  'org.libvirt.api.connect.read': 'virConnectGetCapabilities',
  'org.libvirt.api.connect.search-domains': 'virConnectListAllDomains (virsh list --all)',
  'org.libvirt.api.domain.getattr': 'virDomainLookupByName, and the filter of virConnectListAllDomains',
  'org.libvirt.api.domain.read':
    'virDomainGetXMLDesc, virDomainGetState, virDomainGetJobStats, virDomainListAllCheckpoints, virDomainCheckpointGetXMLDesc',
  'org.libvirt.api.domain.read-secure': 'virDomainGetXMLDesc with VIR_DOMAIN_XML_SECURE (virsh dumpxml --security-info)',
  'org.libvirt.api.domain.checkpoint': 'virDomainBackupBegin, virDomainCheckpointCreateXML, virDomainCheckpointDelete',
  // libvirt 9.0 checks block_write for every backup job, pull mode included.
  'org.libvirt.api.domain.block-write': 'virDomainBackupBegin',
  // NOTE: domain.write also allows live changes such as virsh setmem or
  // attach-device --live. libvirt has no narrower permission for ending a job.
  'org.libvirt.api.domain.write': 'virDomainAbortJob (virsh domjobabort ends a pull-mode backup)',
};

/** Actions the drill user needs on any connection. */
export const drillConnectActions = {
  'org.libvirt.unix.manage': 'read-write connection to the libvirt socket',
  'org.libvirt.api.connect.getattr': 'virConnectOpen',
  'org.libvirt.api.connect.read': 'virConnectGetCapabilities',
  'org.libvirt.api.connect.search-domains': 'virConnectListAllDomains',
};

/** Actions the drill user needs, only on domains whose name has the drill prefix. */
export const drillDomainActions = {
  'org.libvirt.api.domain.getattr': 'virDomainLookupByName',
  'org.libvirt.api.domain.read': 'virDomainGetXMLDesc, virDomainGetState',
  'org.libvirt.api.domain.write': 'virDomainDefineXML (with domain.save)',
  'org.libvirt.api.domain.save': 'virDomainDefineXML',
  'org.libvirt.api.domain.start': 'virDomainCreate',
  'org.libvirt.api.domain.stop': 'virDomainDestroy',
  'org.libvirt.api.domain.init-control': 'virDomainShutdown',
  'org.libvirt.api.domain.delete': 'virDomainUndefine',
};

/**
 * Body of the polkit rules file. It expects a variable `hvbackupPolkit` with
 * the keys of polkitSettings() declared before it. The rules are ES5 because
 * polkit 121 and later run them in Duktape.
 */
export function polkitBody() {
  const list = (actions) => JSON.stringify(Object.keys(actions), null, 2).replace(/\n/g, '\n  ');

  return `// Grants the hvbackup backup user the libvirt actions of a pull-mode
// backup on every domain, and the drill user the actions of a restore drill
// on domains whose name starts with the drill prefix. Restore stays with
// root and the admin group.
//
// These rules only limit libvirt API calls when libvirtd.conf (or
// virtqemud.conf) sets access_drivers = [ "polkit" ]. Without that setting
// org.libvirt.unix.manage alone grants full access to qemu:///system, and
// these rules would give both users full control of every domain.
(function (settings) {
  var backupActions = ${list(backupActions)};
  var drillConnectActions = ${list(drillConnectActions)};
  var drillDomainActions = ${list(drillDomainActions)};

  function contains(values, value) {
    return values.indexOf(value) !== -1;
  }

  function isLibvirtAction(id) {
    return id === "org.libvirt.unix.manage" || id.indexOf("org.libvirt.api.") === 0;
  }

  function isDrillDomain(action) {
    var name = action.lookup("domain_name");
    return typeof name === "string" && name.indexOf(settings.drillDomainPrefix) === 0;
  }

  polkit.addRule(function (action, subject) {
    if (!isLibvirtAction(action.id)) {
      return undefined;
    }

    // Root and the admin group keep full access, so that the access driver
    // takes nothing from the administrators.
    if (subject.user === "root" || subject.isInGroup(settings.adminGroup)) {
      return polkit.Result.YES;
    }

    if (subject.user === settings.backupUser) {
      return contains(backupActions, action.id) ? polkit.Result.YES : polkit.Result.NO;
    }

    if (subject.user === settings.drillUser) {
      if (contains(drillConnectActions, action.id)) {
        return polkit.Result.YES;
      }
      if (contains(drillDomainActions, action.id) && isDrillDomain(action)) {
        return polkit.Result.YES;
      }
      return polkit.Result.NO;
    }

    return undefined;
  });
})(hvbackupPolkit);
`;
}

/** Values the polkit rules read from the `hvbackupPolkit` variable. */
export function polkitSettings(values = defaults) {
  return {
    backupUser: values.user,
    drillUser: values.drillUser,
    adminGroup: values.adminGroup,
    drillDomainPrefix: values.drillDomainPrefix,
  };
}

/** Renders the complete rules file; module.nix joins the same two parts. */
export function polkitRules(settings) {
  return `var hvbackupPolkit = ${JSON.stringify(settings)};\n\n${polkitBody()}`;
}
