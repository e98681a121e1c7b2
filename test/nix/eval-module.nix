# Evaluates nix/module.nix and nix/package.nix without nixpkgs, with a stub
# `lib` and `pkgs` that implement only the functions the two files call.
# The stub module system resolves option defaults and applies `overrides`
# on top; it does no type checking, so option types are tested only for
# being declared. Used by test/nix/module.test.ts through
# `nix-instantiate --eval --strict --json`.
{
  overrides ? { },
}:

let
  isOption = value: builtins.isAttrs value && (value._type or null) == "option";

  # Merges two attribute sets the way the module system merges definitions
  # of different modules: nested sets merge, lists concatenate.
  mergeTwo =
    left: right:
    left
    // builtins.mapAttrs (
      name: value:
      if !(builtins.hasAttr name left) then
        value
      else if builtins.isAttrs value && builtins.isAttrs left.${name} then
        mergeTwo left.${name} value
      else if builtins.isList value then
        left.${name} ++ value
      else
        value
    ) right;

  # Applies option values over the defaults: nested sets merge, any other
  # value replaces the default, as a definition replaces an option default.
  applyOverrides =
    base: values:
    base
    // builtins.mapAttrs (
      name: value:
      if builtins.hasAttr name base && builtins.isAttrs value && builtins.isAttrs base.${name} then
        applyOverrides base.${name} value
      else
        value
    ) values;

  stubType = name: { inherit name; };

  lib = {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = description: {
      _type = "option";
      default = false;
      inherit description;
      type = stubType "bool";
    };
    mkIf = condition: content: if condition then content else { };
    mkMerge = builtins.foldl' mergeTwo { };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    toList = value: if builtins.isList value then value else [ value ];
    concatStringsSep = builtins.concatStringsSep;
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    escapeShellArgs = args: builtins.concatStringsSep " " (map (arg: "'${arg}'") args);
    importJSON = path: builtins.fromJSON (builtins.readFile path);
    optional = condition: value: if condition then [ value ] else [ ];
    makeBinPath = packages: builtins.concatStringsSep ":" (map (package: "${package}/bin") packages);
    cleanSourceWith = attrs: attrs;
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" ];
    types = {
      bool = stubType "bool";
      str = stubType "str";
      package = stubType "package";
      anything = stubType "anything";
      enum = values: stubType "enum";
      listOf = type: stubType "listOf";
      nonEmptyListOf = type: stubType "nonEmptyListOf";
      attrsOf = type: stubType "attrsOf";
      either = left: right: stubType "either";
    };
  };

  pkgs = {
    callPackage = path: args: "/nix/store/stub-hvbackup";
    # The stub "file" is the JSON text itself, so the test can read it.
    formats.json = settings: {
      type = stubType "json";
      generate = name: value: builtins.toJSON value;
    };
  };

  # Replaces every option declaration by its default, recursively.
  defaultsOf =
    options:
    builtins.mapAttrs (
      name: value: if isOption value then value.default else defaultsOf value
    ) options;

  evaluate =
    let
      module = import ../../nix/module.nix {
        inherit lib pkgs;
        config = {
          services.hvbackup = applyOverrides (defaultsOf module.options.services.hvbackup) overrides;
        };
      };
    in
    module;

  optionPaths =
    prefix: options:
    builtins.concatLists (
      map (
        name:
        let
          value = options.${name};
        in
        if isOption value then [ "${prefix}${name}" ] else optionPaths "${prefix}${name}." value
      ) (builtins.attrNames options)
    );

  package = import ../../nix/package.nix {
    inherit lib;
    buildNpmPackage = attrs: attrs;
    nodejs_20 = "/nix/store/stub-nodejs";
    makeWrapper = "/nix/store/stub-makeWrapper";
    libvirt = "/nix/store/stub-libvirt";
    qemu-utils = "/nix/store/stub-qemu-utils";
    gnupg = "/nix/store/stub-gnupg";
  };
in
{
  options = optionPaths "" evaluate.options.services.hvbackup;
  config = evaluate.config;
  package = {
    inherit (package) pname version npmBuildScript postInstall;
    runtimeDeps = package.passthru.runtimeDeps;
  };
}
