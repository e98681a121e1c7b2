# NixOS module for hvbackup: nightly encrypted backups of libvirt domains as
# an unprivileged user, and an optional weekly restore drill.
#
# The units, tmpfiles rules and polkit rules come from units.json, which
# nix/generate.mjs renders from nix/units.mjs; this module only replaces
# names, paths and schedules with the values of its options.
#
# The module sets access_drivers = [ "polkit" ] for libvirtd unless
# services.hvbackup.libvirtAccessControl is false. From then on libvirt
# checks every API call against polkit: root and members of adminGroup keep
# full access through the rules below, and any other user who needs libvirt
# needs a polkit rule of its own.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.hvbackup;
  data = builtins.fromJSON (builtins.readFile ./units.json);
  defaults = data.defaults;
  settingsFormat = pkgs.formats.json { };

  configPath = "/etc/hvbackup/config.json";
  scratchDir = "${cfg.stateDir}/scratch";
  stagingDir = "${cfg.stateDir}/staging";

  # Paths the product reads from config.json must match the sandbox, so the
  # module sets them; values in cfg.settings win.
  finalSettings = {
    stateDir = cfg.stateDir;
    inherit scratchDir stagingDir;
  } // cfg.settings;

  domainArguments = if cfg.domains == "all" then [ "--all" ] else cfg.domains;

  backupCommand = [
    "${cfg.package}/bin/hvbackup"
    "--config"
    configPath
    "backup"
  ] ++ domainArguments ++ [
    "--mode"
    cfg.mode
  ];

  drillCommand = [
    "${cfg.package}/bin/hvbackup"
    "--config"
    configPath
    "drill"
    "--all"
  ];

  credentialLines = credentials: lib.mapAttrsToList (name: path: "${name}:${path}") credentials;

  # Each tmpfiles field is replaced only where it equals a default, by
  # position, so a user name and a path can never be mixed up.
  pathValues = {
    ${defaults.stateDir} = finalSettings.stateDir;
    ${defaults.scratchDir} = finalSettings.scratchDir;
    ${defaults.stagingDir} = finalSettings.stagingDir;
    ${defaults.drillDir} = cfg.drill.stateDir;
  };
  userValues = {
    ${defaults.user} = cfg.user;
    ${defaults.drillUser} = cfg.drill.user;
  };
  groupValues = {
    ${defaults.group} = cfg.group;
    ${defaults.drillGroup} = cfg.drill.group;
  };
  replaceField =
    values: field:
    if builtins.hasAttr field values then builtins.getAttr field values else field;
  tmpfilesRule =
    rule:
    lib.concatStringsSep " " [
      (builtins.elemAt rule 0)
      (replaceField pathValues (builtins.elemAt rule 1))
      (builtins.elemAt rule 2)
      (replaceField userValues (builtins.elemAt rule 3))
      (replaceField groupValues (builtins.elemAt rule 4))
      (builtins.elemAt rule 5)
    ];
  tmpfilesRules = map tmpfilesRule (
    builtins.filter (
      rule:
      cfg.drill.enable
      || (builtins.elemAt rule 1 != defaults.drillDir && builtins.elemAt rule 1 != defaults.drillLogDir)
    ) data.tmpfiles
  );

  polkitSettings = {
    backupUser = cfg.user;
    drillUser = cfg.drill.user;
    adminGroup = cfg.adminGroup;
    drillDomainPrefix = defaults.drillDomainPrefix;
  };
  polkitRules = "var hvbackupPolkit = ${builtins.toJSON polkitSettings};\n\n${data.polkit.body}";

  # Builds a NixOS service from a unit of units.json, then applies the
  # module's values and the user's overrides on top.
  mkService =
    unitName: serviceValues:
    let
      unit = data.units.${unitName};
    in
    {
      description = unit.Unit.Description;
      wants = lib.toList (unit.Unit.Wants or [ ]);
      after = lib.toList (unit.Unit.After or [ ]);
      serviceConfig = unit.Service // serviceValues // cfg.extraServiceConfig;
    };

  mkTimer = unitName: timerValues: {
    description = data.units.${unitName}.Unit.Description;
    wantedBy = [ "timers.target" ];
    timerConfig = data.units.${unitName}.Timer // timerValues;
  };
in
{
  options.services.hvbackup = {
    enable = lib.mkEnableOption "nightly encrypted backups of libvirt domains with hvbackup";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The hvbackup package to run.";
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      example = lib.literalExpression ''
        {
          repository = {
            type = "s3";
            bucket = "vm-backups";
            endpoint = "https://s3.example.net";
            objectLock = { mode = "GOVERNANCE"; days = 30; };
          };
          recipients = [ "/etc/hvbackup/admin-keys/alice.asc" ];
        }
      '';
      description = ''
        Contents of ${configPath}, rendered as JSON. stateDir, scratchDir
        and stagingDir default to the directories the services may write.
        Leave signingKey unset to use the host-key credential.
      '';
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = defaults.user;
      description = "System user that runs the backup. It can take backups but cannot read them back or restore.";
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = defaults.group;
      description = "Group of the backup user and of the scratch directory.";
    };

    adminGroup = lib.mkOption {
      type = lib.types.str;
      default = "libvirtd";
      description = "Group whose members keep full libvirt access under the polkit rules (NixOS names the libvirt group libvirtd).";
    };

    stateDir = lib.mkOption {
      type = lib.types.str;
      default = defaults.stateDir;
      description = "State directory; the scratch and staging directories are created inside it.";
    };

    qemuUsers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "qemu-libvirtd" ];
      description = "Users added to the backup group so that QEMU can reach the NBD socket and scratch files in the scratch directory.";
    };

    libvirtAccessControl = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether to set access_drivers = [ "polkit" ] in libvirtd.conf. The
        polkit rules only limit the backup user when this is set. Without
        it, any user allowed to connect to qemu:///system has full access.
      '';
    };

    schedule = lib.mkOption {
      type = lib.types.str;
      default = defaults.schedule;
      example = "*-*-* 01:30:00";
      description = "When the backup runs, as a systemd OnCalendar expression.";
    };

    randomizedDelaySec = lib.mkOption {
      type = lib.types.str;
      default = defaults.randomizedDelaySec;
      description = "Random delay added to each start of the timers (systemd time span).";
    };

    domains = lib.mkOption {
      type = lib.types.either (lib.types.enum [ "all" ]) (lib.types.nonEmptyListOf lib.types.str);
      default = "all";
      example = [
        "web"
        "db"
      ];
      description = ''"all" to back up every domain, or a list of domain names.'';
    };

    mode = lib.mkOption {
      type = lib.types.enum [
        "auto"
        "full"
        "incremental"
      ];
      default = defaults.mode;
      description = "Backup mode passed as --mode.";
    };

    hostKeyFile = lib.mkOption {
      type = lib.types.str;
      default = defaults.hostKeyFile;
      description = ''
        Secret host signing key, readable by root only. systemd passes it to
        the service as the credential host-key. Use a path outside the Nix
        store.
      '';
    };

    credentials = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = {
        s3 = "/etc/hvbackup/s3-backup.json";
      };
      description = "Further credentials of the backup service, as name = path (LoadCredential=).";
    };

    extraServiceConfig = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      example = {
        ProtectKernelLogs = false;
      };
      description = "serviceConfig entries that override the sandboxing of both services.";
    };

    drill = {
      enable = lib.mkEnableOption "the weekly restore drill into drill- domains";

      user = lib.mkOption {
        type = lib.types.str;
        default = defaults.drillUser;
        description = "System user that runs the drill. It may only define, start, stop and undefine drill- domains.";
      };

      group = lib.mkOption {
        type = lib.types.str;
        default = defaults.drillGroup;
        description = "Group of the drill user.";
      };

      stateDir = lib.mkOption {
        type = lib.types.str;
        default = defaults.drillDir;
        description = "Directory for the drill's restored disks.";
      };

      schedule = lib.mkOption {
        type = lib.types.str;
        default = defaults.drillSchedule;
        description = "When the drill runs, as a systemd OnCalendar expression.";
      };

      keyFile = lib.mkOption {
        type = lib.types.str;
        default = defaults.drillKeyFile;
        description = "Secret drill key, readable by root only, passed as the credential drill-key.";
      };

      credentials = lib.mkOption {
        type = lib.types.attrsOf lib.types.str;
        default = { };
        description = "Further credentials of the drill service, as name = path.";
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        users.users.${cfg.user} = {
          isSystemUser = true;
          group = cfg.group;
          description = "hvbackup backup service";
        };
        users.groups.${cfg.group} = { };

        environment.etc."hvbackup/config.json".source = settingsFormat.generate "hvbackup-config.json" finalSettings;
        environment.systemPackages = [ cfg.package ];

        systemd.tmpfiles.rules = tmpfilesRules;

        systemd.services.hvbackup = mkService "hvbackup.service" {
          User = cfg.user;
          Group = cfg.group;
          ExecStart = lib.escapeShellArgs backupCommand;
          LoadCredential = [ "host-key:${cfg.hostKeyFile}" ] ++ credentialLines cfg.credentials;
          ReadWritePaths = [
            finalSettings.stateDir
            finalSettings.scratchDir
            finalSettings.stagingDir
          ];
        };

        systemd.timers.hvbackup = mkTimer "hvbackup.timer" {
          OnCalendar = cfg.schedule;
          RandomizedDelaySec = cfg.randomizedDelaySec;
        };

        security.polkit.enable = true;
        security.polkit.extraConfig = polkitRules;

        virtualisation.libvirtd.extraConfig = lib.mkIf cfg.libvirtAccessControl ''
          access_drivers = [ "polkit" ]
        '';
      }

      {
        users.users = lib.genAttrs cfg.qemuUsers (name: {
          extraGroups = [ cfg.group ];
        });
      }

      (lib.mkIf cfg.drill.enable {
        users.users.${cfg.drill.user} = {
          isSystemUser = true;
          group = cfg.drill.group;
          description = "hvbackup restore drill";
        };
        users.groups.${cfg.drill.group} = { };

        systemd.services.hvbackup-drill = mkService "hvbackup-drill.service" {
          User = cfg.drill.user;
          Group = cfg.drill.group;
          ExecStart = lib.escapeShellArgs drillCommand;
          LoadCredential = [ "drill-key:${cfg.drill.keyFile}" ] ++ credentialLines cfg.drill.credentials;
          ReadWritePaths = [ cfg.drill.stateDir ];
        };

        systemd.timers.hvbackup-drill = mkTimer "hvbackup-drill.timer" {
          OnCalendar = cfg.drill.schedule;
          RandomizedDelaySec = cfg.randomizedDelaySec;
        };
      })
    ]
  );
}
