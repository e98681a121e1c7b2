# Builds hvbackup from this repository with buildNpmPackage.
#
#   nix-build -E 'with import <nixpkgs> { }; callPackage ./nix/package.nix { }'
#
# npmDepsHash is a placeholder. Fill it in with the hash that
# `prefetch-npm-deps package-lock.json` prints (prefetch-npm-deps is in
# nixpkgs), or build once and copy the hash from the mismatch error.
# Update it whenever package-lock.json changes.
{
  lib,
  buildNpmPackage,
  nodejs_20,
  makeWrapper,
  libvirt,
  qemu-utils,
  gnupg,
  withGnupg ? false,
}:

let
  packageJson = lib.importJSON ../package.json;

  # virsh drives the libvirt backup jobs; qemu-img and qemu-nbd read the
  # images of shut-off domains and write restored disks. gnupg is only
  # needed for the optional key handling helpers.
  runtimeDeps = [
    libvirt
    qemu-utils
  ] ++ lib.optional withGnupg gnupg;

  # Leave out everything the build does not read, so that a local
  # node_modules or test output never reaches the store.
  excludedNames = [
    ".git"
    "node_modules"
    "dist"
    "coverage"
    ".test-work"
    "result"
  ];
in
buildNpmPackage {
  pname = packageJson.name;
  version = packageJson.version;

  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type: !(builtins.elem (baseNameOf path) excludedNames);
  };

  nodejs = nodejs_20;

  # Placeholder, see the comment at the top of this file.
  npmDepsHash = lib.fakeHash;

  # Runs `npm run build` (tsc), then installs the files listed in
  # package.json and links bin/hvbackup.js as $out/bin/hvbackup.
  npmBuildScript = "build";

  nativeBuildInputs = [ makeWrapper ];

  postInstall = ''
    wrapProgram $out/bin/hvbackup --prefix PATH : ${lib.makeBinPath runtimeDeps}
  '';

  passthru = {
    inherit runtimeDeps;
  };

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "hvbackup";
    platforms = lib.platforms.linux;
  };
}
