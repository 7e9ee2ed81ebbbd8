# shellcheck shell=bash
# Shared by the benchmarks (sourced; the caller defines `log` and `die`).

# make_tree_tar TAR FILES: a real source tree as a tarball, made once: whole
# crates from the cargo registry (or the subfolders of BENCH_TREE_SRC), in
# name order, until there are FILES files. Deterministic on one machine;
# another machine's registry holds other crates, so the benchmarks describe
# the tree under their tables.
make_tree_tar() {
    local tree_tar=$1 tree_files=$2 tree_src=${BENCH_TREE_SRC:-} d sub count=0
    local picked=()
    [ -f "$tree_tar" ] && return 0
    if [ -z "$tree_src" ]; then
        for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do tree_src=${d%/}; done
    fi
    [ -d "${tree_src:-/nonexistent}" ] || die "no source tree found; set BENCH_TREE_SRC to a folder with many subfolders of files"
    log "building the tree tarball from $tree_src (≥ $tree_files files)…"
    while IFS= read -r sub; do
        picked+=("$sub")
        count=$((count + $(find "$tree_src/$sub" -type f | wc -l)))
        [ "$count" -lt "$tree_files" ] || break
    done < <(find "$tree_src" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
    [ "$count" -ge "$tree_files" ] || die "$tree_src has only $count files; $tree_files are needed"
    tar -C "$tree_src" --sort=name --owner=0 --group=0 --numeric-owner \
        -cf "$tree_tar.part" "${picked[@]}"
    mv "$tree_tar.part" "$tree_tar"
}
