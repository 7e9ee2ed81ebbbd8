#!/usr/bin/env bash
# Builds the Nimbus Linux packages: a .deb and an .rpm, left in dist/ at the
# repository root.
#
#   bash installers/linux/build.sh [--install-deps] [--debug] [--no-ui-install] [--prebuilt-service] [--appimage]
#
# Each package holds:
#   /usr/bin/nimbus-app                  the desktop app (src-tauri/), with its
#                                        desktop entry and icons, made by the
#                                        Tauri bundler from tauri.conf.json
#   /usr/bin/nimbusd, /usr/bin/nimbus    the service and the CLI
#   /usr/lib/systemd/user/nimbusd.service
#   /usr/share/doc/nimbus/CONFIGURATION.md
# and depends on fuse3 (bundle.linux.{deb,rpm}.depends in tauri.conf.json).
#
# Options:
#   --install-deps   first install the Debian/Ubuntu packages the build needs
#                    that are missing (apt-get, through sudo unless root).
#                    Without it, everything missing is listed at once, with
#                    the command that installs it.
#   --debug          debug profile: quicker to build, for CI; not for release
#   --no-ui-install  never run `npm ci` in ui/ (by default it runs only when
#                    ui/node_modules is missing)
#   --prebuilt-service
#                    package the nimbusd and nimbus already in the target
#                    directory instead of building them (tests/run.sh builds
#                    them with the tests, whose dev-dependency features would
#                    make `cargo build -p` rebuild most dependencies)
#   --appimage       also try an AppImage. The Tauri bundler downloads AppRun
#                    and linuxdeploy from GitHub while bundling, so this fails
#                    on a machine without internet access; the .deb and .rpm
#                    are built first and kept either way.
#   -h, --help       this text
#
# Honours CARGO_TARGET_DIR (default: target/ in the repository, as for cargo).
#
# Needs: cargo; Node.js 20 or later with npm (the UI build and the Tauri CLI,
# which is @tauri-apps/cli in ui/package.json; Debian 12's own nodejs is 18,
# too old: take it from nodejs.org or backports); and the Debian packages in
# `build_packages` below (a C compiler, OpenSSL, WebKitGTK, GTK, D-Bus and
# the tray's libraries, python3, and dpkg-deb and rpm to check what went
# into the packages; the bundler writes the .rpm itself, without rpmbuild).
#
# Time: a cold release build takes roughly 12 minutes on 2 cores; --debug,
# or a warm target directory, much less.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

profile=release
ui_install=auto
appimage=no
service_build=yes
install_deps=no
while (($#)); do
  case $1 in
    --install-deps) install_deps=yes ;;
    --debug) profile=debug ;;
    --no-ui-install) ui_install=no ;;
    --appimage) appimage=yes ;;
    --prebuilt-service) service_build=no ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "build.sh: unknown option '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

die() {
  echo "build.sh: $*" >&2
  exit 1
}
step() { printf '\n==> %s\n' "$*"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

# --- Tools -------------------------------------------------------------------
step "Checking tools"
# What a minimal Debian or Ubuntu lacks for this build (tests/app-tools.sh
# installs these too, with what the app's tests need).
build_packages=(build-essential pkg-config libssl-dev libdbus-1-dev libwebkit2gtk-4.1-dev libgtk-3-dev
  libayatana-appindicator3-dev librsvg2-dev libxdo-dev file python3 rpm)
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${build_packages[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    if [[ $install_deps == yes ]]; then
      # shellcheck source=tests/lib.sh
      . "$repo/tests/lib.sh"
      step "Installing ${missing[*]}"
      apt_install "${missing[@]}"
    else
      die "these Debian packages are missing: ${missing[*]}
  install them with:  bash installers/linux/build.sh --install-deps   (the same build, after installing them)
  or yourself with:   sudo apt-get install ${missing[*]}"
    fi
  fi
fi
missing_tools=()
need() { # TOOL HOW-TO-GET-IT
  command -v "$1" >/dev/null 2>&1 || missing_tools+=("$1: $2")
}
need cargo "install Rust from https://rustup.rs"
need node "install Node.js 20 or later (nodejs.org, or your distribution's backports; Debian 12's nodejs is too old)"
need npm "it comes with Node.js (Debian: sudo apt-get install npm)"
need python3 "install it with: sudo apt-get install python3"
need dpkg-deb "install it with: sudo apt-get install dpkg"
need rpm "install it with: sudo apt-get install rpm (to check the .rpm's contents)"
need cc "install a C compiler (Debian: sudo apt-get install build-essential)"
need pkg-config "install it with: sudo apt-get install pkg-config"
if ((${#missing_tools[@]})); then
  die "missing tools:$(printf '\n  %s' "${missing_tools[@]}")"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
((node_major >= 20)) || die "Node.js $(node --version) is too old for the UI's build (Vite needs 20.19 or newer);" \
  "install Node.js 20 or 22 (nodejs.org, or your distribution's backports) and run this again"
if ! pkg-config --exists webkit2gtk-4.1 libsoup-3.0 gtk+-3.0 openssl; then
  die "the WebKitGTK, GTK or OpenSSL development files are missing; install them with:" \
    "bash installers/linux/build.sh --install-deps (on Debian or Ubuntu), or your system's" \
    "webkit2gtk4.1-devel gtk3-devel openssl-devel packages"
fi
[[ -f ui/package.json ]] || die "ui/package.json is missing: the desktop app's UI is not in this checkout"
[[ -f docs/CONFIGURATION.md ]] || die "docs/CONFIGURATION.md is missing"

# cargo decides where the target directory is (CARGO_TARGET_DIR, a
# .cargo/config.toml, or target/); ask it rather than guess.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out_dir=$target_dir/$profile
echo "profile $profile, target directory $target_dir"

# --- UI dependencies ---------------------------------------------------------
tauri_cli=$repo/ui/node_modules/.bin/tauri
if [[ -d ui/node_modules ]]; then
  echo "ui/node_modules exists, not running npm ci"
elif [[ $ui_install == no ]]; then
  die "ui/node_modules is missing and --no-ui-install was given; run: (cd ui && npm ci)"
else
  step "Installing the UI's dependencies (npm ci)"
  (cd ui && npm ci)
fi
[[ -x $tauri_cli ]] || die "$tauri_cli is missing; is @tauri-apps/cli a devDependency in ui/package.json? Then run: (cd ui && npm ci)"

# --- Service and CLI ---------------------------------------------------------
if [[ $service_build == yes ]]; then
  step "Building nimbusd and nimbus ($profile)"
  cargo_profile=()
  [[ $profile == release ]] && cargo_profile=(--release)
  cargo build "${cargo_profile[@]}" --locked -p nimbus-service -p nimbus-cli
fi
for bin in nimbusd nimbus; do
  if [[ $service_build == yes ]]; then
    [[ -x $out_dir/$bin ]] || die "cargo finished but $out_dir/$bin is not there"
  else
    [[ -x $out_dir/$bin ]] || die "--prebuilt-service: there is no $out_dir/$bin; build it first (cargo build -p nimbus-service -p nimbus-cli)"
  fi
done

# --- The app, bundled --------------------------------------------------------
# The extra files go in through a config overlay that `tauri build --config`
# merges into tauri.conf.json: bundle.linux.{deb,rpm}.files maps a path in
# the package to a file here. Absolute paths, since the bundler resolves
# relative ones from wherever it runs.
overlay=$(mktemp --suffix=.json)
trap 'rm -f "$overlay"' EXIT
python3 - "$overlay" "$out_dir" "$repo" <<'EOF'
import json, sys
overlay, out_dir, repo = sys.argv[1:]
files = {
    "/usr/bin/nimbusd": f"{out_dir}/nimbusd",
    "/usr/bin/nimbus": f"{out_dir}/nimbus",
    "/usr/lib/systemd/user/nimbusd.service": f"{repo}/installers/linux/nimbusd.service",
    "/usr/share/doc/nimbus/CONFIGURATION.md": f"{repo}/docs/CONFIGURATION.md",
}
config = {"bundle": {"linux": {"deb": {"files": files}, "rpm": {"files": files}}}}
with open(overlay, "w") as f:
    json.dump(config, f, indent=2)
EOF

# Old packages would be picked up below as if they were new.
rm -f "$out_dir"/bundle/deb/*.deb "$out_dir"/bundle/rpm/*.rpm

step "Building and bundling the app (tauri build, deb and rpm)"
tauri_profile=()
[[ $profile == debug ]] && tauri_profile=(--debug)
# tauri build runs build.beforeBuildCommand (the UI's `npm run build`) first.
# --ci: no prompts. Arguments after -- go to cargo.
(cd src-tauri && "$tauri_cli" build --ci "${tauri_profile[@]}" --bundles deb,rpm \
  --config "$overlay" -- --locked)

# --- Collect and check -------------------------------------------------------
shopt -s nullglob
debs=("$out_dir"/bundle/deb/*.deb)
rpms=("$out_dir"/bundle/rpm/*.rpm)
shopt -u nullglob
((${#debs[@]} == 1)) || die "expected one .deb in $out_dir/bundle/deb/, found ${#debs[@]}"
((${#rpms[@]} == 1)) || die "expected one .rpm in $out_dir/bundle/rpm/, found ${#rpms[@]}"

step "Checking the packages' contents"
# Paths every package must hold, as extended regular expressions over the
# package's file list (with the leading "/" or "./" taken off).
required=(
  'usr/bin/nimbus-app'
  'usr/bin/nimbusd'
  'usr/bin/nimbus'
  'usr/lib/systemd/user/nimbusd\.service'
  'usr/share/doc/nimbus/CONFIGURATION\.md'
  'usr/share/applications/[^/]+\.desktop'
  'usr/share/icons/hicolor/[^/]+/apps/[^/]+\.png'
)
executables=(usr/bin/nimbus-app usr/bin/nimbusd usr/bin/nimbus)

# check_listing NAME LISTING: LISTING is one "MODE PATH" a line.
check_listing() {
  local name=$1 listing=$2 missing=() path
  for path in "${required[@]}"; do
    grep -Eq "^[^ ]+ ${path}\$" <<<"$listing" || missing+=("/${path//\\/}")
  done
  ((${#missing[@]} == 0)) || die "$name lacks: ${missing[*]}"
  for path in "${executables[@]}"; do
    grep -Eq "^-..x..x..x ${path}\$" <<<"$listing" ||
      die "$name has /$path without execute permission for everyone"
  done
  echo "$name: all ${#required[@]} required paths present, binaries executable"
}

deb=${debs[0]}
rpm_file=${rpms[0]}
# dpkg-deb -c prints "MODE OWNER SIZE DATE TIME ./PATH".
deb_listing=$(dpkg-deb -c "$deb" | awk '{ sub(/^\.\//, "", $6); print $1, $6 }')
check_listing "$(basename "$deb")" "$deb_listing"
rpm_listing=$(rpm -qp --queryformat '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file" |
  sed 's#^\([^ ]*\) /#\1 #')
check_listing "$(basename "$rpm_file")" "$rpm_listing"

# Name them as each distribution does (nimbus_0.1.0_amd64.deb,
# nimbus-0.1.0-1.x86_64.rpm), after the package name inside rather than
# the bundler's "Nimbus_…".
# shellcheck disable=SC2016 # ${Package} and so on are dpkg-deb's fields, not the shell's
deb_name=$(dpkg-deb --showformat '${Package}_${Version}_${Architecture}.deb' --show "$deb")
rpm_name=$(rpm -qp --queryformat '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm' "$rpm_file")
mkdir -p dist
rm -f dist/nimbus_*.deb dist/nimbus-*.rpm
cp "$deb" "dist/$deb_name"
cp "$rpm_file" "dist/$rpm_name"

step "Packages"
ls -l "dist/$deb_name" "dist/$rpm_name"
echo
echo "dist/$deb_name: $(dpkg-deb --field "dist/$deb_name" Package Version Depends | paste -sd ' ')"
dpkg-deb -c "dist/$deb_name" | awk '$1 !~ /^d/ { printf "  %10d  %s\n", $3, $6 }'
echo
echo "dist/$rpm_name: requires $(rpm -qp --requires "dist/$rpm_name" | grep -v '^rpmlib(' | paste -sd ' ')"
rpm -qlp "dist/$rpm_name" | sed 's/^/  /'

echo
echo "Install with:  sudo apt install ./dist/$deb_name     (or: sudo dnf install ./dist/$rpm_name)"
echo "then, as yourself:  systemctl --user enable --now nimbusd"

# --- AppImage (optional, needs internet) -------------------------------------
if [[ $appimage == yes ]]; then
  step "Trying an AppImage (the bundler downloads AppRun and linuxdeploy)"
  rm -f "$out_dir"/bundle/appimage/*.AppImage
  if (cd src-tauri && "$tauri_cli" build --ci "${tauri_profile[@]}" --bundles appimage \
    --config "$overlay" -- --locked); then
    shopt -s nullglob
    images=("$out_dir"/bundle/appimage/*.AppImage)
    shopt -u nullglob
    ((${#images[@]} == 1)) || die "expected one .AppImage in $out_dir/bundle/appimage/, found ${#images[@]}"
    cp "${images[0]}" dist/
    ls -l "dist/$(basename "${images[0]}")"
  else
    die "the AppImage failed (most often: no internet access, the bundler could not" \
      "download AppRun or linuxdeploy from GitHub); the .deb and .rpm above are fine"
  fi
fi
