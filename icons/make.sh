#!/usr/bin/env bash
# Makes every Nimbus icon from the one source image, icons/source/nimbus.svg.
#
#   bash icons/make.sh
#
# Writes (and overwrites):
#   icons/app/32x32.png, 128x128.png, 128x128@2x.png (256 px), icon.png (512 px)
#       the app icons; src-tauri/tauri.conf.json (bundle.icon) lists them, and
#       the Linux packages install them under /usr/share/icons/hicolor/
#   icons/app/icon.ico   16, 24, 32, 48, 64 and 256 px, for Windows
#   icons/app/icon.icns  16 to 512 px, for macOS; only if png2icns is installed
#   icons/tray/{idle,syncing,paused,offline,error,locked}.png
#       64 x 64 RGBA tray icons, one per state, embedded in the app with
#       include_bytes! (src-tauri/src/tray.rs). Each is the source with a
#       badge drawn in SVG added to it (offline: the cloud turns grey and is
#       struck through), then rasterised.
#
# Needs (installs nothing itself):
#   rsvg-convert  Debian package librsvg2-bin
#   convert       Debian package imagemagick
#   png2icns      Debian package icnsutils (optional: without it icon.icns is
#                 skipped, with a message, and the old one, if any, is kept)
#
# The output is deterministic: PNGs are written without timestamps or other
# metadata, so running this again on the same source leaves `git status`
# clean. The generated files are committed; never edit them by hand, change
# the source or this script and run it again.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_svg=$here/source/nimbus.svg
app_dir=$here/app
tray_dir=$here/tray

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "make.sh: $1 is missing; install it with: sudo apt-get install $2" >&2
    exit 1
  fi
}
need rsvg-convert librsvg2-bin
need convert imagemagick

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# png SVG SIZE OUT: rasterise SVG to a SIZE x SIZE PNG. rsvg-convert draws it;
# convert rewrites it as 8-bit RGBA (what tauri's Image::from_bytes and the
# bundler want) with no metadata, so the bytes depend on the drawing alone.
png() {
  rsvg-convert --width "$2" --height "$2" --keep-aspect-ratio \
    --output "$tmp/raw.png" "$1"
  convert "$tmp/raw.png" -strip \
    -define png:exclude-chunks=date,time,tIME,tEXt,zTXt,iTXt \
    +set date:create +set date:modify \
    "PNG32:$3"
}

mkdir -p "$app_dir" "$tray_dir"

# --- App icons ---------------------------------------------------------------
png "$source_svg" 32 "$app_dir/32x32.png"
png "$source_svg" 128 "$app_dir/128x128.png"
png "$source_svg" 256 "$app_dir/128x128@2x.png"
png "$source_svg" 512 "$app_dir/icon.png"

# Each size of the .ico and .icns is drawn from the SVG at that size, not
# scaled down from a big PNG, so the small ones stay sharp.
ico_parts=()
for size in 16 24 32 48 64 256; do
  png "$source_svg" "$size" "$tmp/ico-$size.png"
  ico_parts+=("$tmp/ico-$size.png")
done
convert "${ico_parts[@]}" -define png:exclude-chunks=date,time,tIME,tEXt,zTXt,iTXt \
  +set date:create +set date:modify "$app_dir/icon.ico"

if command -v png2icns >/dev/null 2>&1; then
  icns_parts=()
  for size in 16 32 48 128 256 512; do
    png "$source_svg" "$size" "$tmp/icns-$size.png"
    icns_parts+=("$tmp/icns-$size.png")
  done
  # png2icns chatters about each image on stdout; errors still reach stderr.
  png2icns "$app_dir/icon.icns" "${icns_parts[@]}" >/dev/null
else
  echo "make.sh: png2icns not found, icons/app/icon.icns not written" \
    "(install it with: sudo apt-get install icnsutils)" >&2
fi

# --- Tray icons --------------------------------------------------------------
# Badges sit in the lower right corner of the 512 x 512 canvas: a white ring
# (so the badge stands out from the cloud and from a dark panel), a coloured
# disc, and a white symbol. Coordinates are in the source's canvas.
badge() { # COLOUR SYMBOL...: the badge group with a disc of COLOUR
  local colour=$1
  shift
  printf '  <g id="badge">\n'
  printf '    <circle cx="392" cy="392" r="116" fill="#FFFFFF"/>\n'
  printf '    <circle cx="392" cy="392" r="100" fill="%s"/>\n' "$colour"
  printf '    %s\n' "$@"
  printf '  </g>\n'
}

# Dark blue for work in progress, amber for "waiting on you", red for a fault,
# slate for locked; grey (the whole cloud) for offline.
badge_syncing=$(badge '#0F3A85' \
  '<path d="M 341.3 373.5 A 54 54 0 0 1 438.8 365.0" fill="none" stroke="#FFFFFF" stroke-width="26" stroke-linecap="round"/>' \
  '<path d="M 452.3 388.4 L 461.3 352.0 L 416.2 378.0 Z" fill="#FFFFFF" stroke="#FFFFFF" stroke-width="6" stroke-linejoin="round"/>' \
  '<path d="M 442.7 410.5 A 54 54 0 0 1 345.2 419.0" fill="none" stroke="#FFFFFF" stroke-width="26" stroke-linecap="round"/>' \
  '<path d="M 331.7 395.6 L 322.7 432.0 L 367.8 406.0 Z" fill="#FFFFFF" stroke="#FFFFFF" stroke-width="6" stroke-linejoin="round"/>')
badge_paused=$(badge '#D98A00' \
  '<rect x="350" y="344" width="30" height="96" rx="10" fill="#FFFFFF"/>' \
  '<rect x="404" y="344" width="30" height="96" rx="10" fill="#FFFFFF"/>')
badge_error=$(badge '#D93025' \
  '<rect x="376" y="330" width="32" height="80" rx="16" fill="#FFFFFF"/>' \
  '<circle cx="392" cy="440" r="18" fill="#FFFFFF"/>')
badge_locked=$(badge '#37474F' \
  '<path d="M 362 392 V 366 A 30 30 0 0 1 422 366 V 392" fill="none" stroke="#FFFFFF" stroke-width="18"/>' \
  '<rect x="344" y="384" width="96" height="72" rx="12" fill="#FFFFFF"/>' \
  '<circle cx="392" cy="414" r="10" fill="#37474F"/>' \
  '<rect x="387" y="414" width="10" height="24" fill="#37474F"/>')
# Offline has no badge: a slash across the whole mark, dark grey in a white
# outline, reads better at panel size than a small symbol would.
strike_offline='  <g id="strike">
    <line x1="96" y1="112" x2="416" y2="432" stroke="#FFFFFF" stroke-width="64" stroke-linecap="round"/>
    <line x1="96" y1="112" x2="416" y2="432" stroke="#3C4043" stroke-width="32" stroke-linecap="round"/>
  </g>'

source_text=$(<"$source_svg")
cloud_fill='<g id="cloud-fill" fill="#2F6FDE">'
if [[ $source_text != *"$cloud_fill"* || $source_text != *"</svg>"* ]]; then
  echo "make.sh: $source_svg no longer has '$cloud_fill' and a closing </svg>;" \
    "the tray variants are built by editing those, see the comment at its top" >&2
  exit 1
fi

# tray STATE EXTRA [TEXT]: the tray icon for STATE is TEXT (the source by
# default) with EXTRA added just before the closing </svg>.
tray() {
  local state=$1 extra=$2 text=${3:-$source_text}
  printf '%s\n%s\n</svg>\n' "${text%</svg>*}" "$extra" >"$tmp/$state.svg"
  png "$tmp/$state.svg" 64 "$tray_dir/$state.png"
}

tray idle ''
tray syncing "$badge_syncing"
tray paused "$badge_paused"
tray error "$badge_error"
tray locked "$badge_locked"
tray offline "$strike_offline" "${source_text/"$cloud_fill"/<g id=\"cloud-fill\" fill=\"#8A929C\">}"

echo "make.sh: wrote $(find "$app_dir" "$tray_dir" -type f | wc -l) files in icons/app and icons/tray"
