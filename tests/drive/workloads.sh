# shellcheck shell=bash
# Real-program workloads shared by the drive tests (tests/drive/programs.sh)
# and the cloud tests (tests/cloud/run.sh). Sourced; needs `repo` set to the
# repository's root.

# make_git_source DIR: a repository of 21 commits (this project's vault
# sources, then 20 changes), to clone onto the drive.
make_git_source() {
    local src=$1
    git init -q "$src"
    (
        cd "$src"
        git config user.email t@example.invalid
        git config user.name tester
        cp -r "$repo/crates/nimbus-vault/src" code
        git add -A && git commit -qm first
        for i in $(seq 1 20); do
            echo "change $i" >>code/lib.rs
            git commit -qam "change $i"
        done
    )
}

# git_workload SRC DEST: clone, then fsck and count the commits.
git_workload() {
    git clone -q "$1" "$2"
    (cd "$2" && git fsck --full --strict && test "$(git rev-list --count HEAD)" = 21)
}

# sqlite_workload DB: 200 transactions in WAL mode, then an integrity check.
sqlite_workload() {
    {
        echo "PRAGMA journal_mode=WAL;"
        echo "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, blob BLOB);"
        for i in $(seq 1 200); do
            echo "BEGIN; INSERT INTO t (name, blob) VALUES ('row $i', randomblob(3000)); UPDATE t SET name = name || '.' WHERE id % 7 = $((i % 7)); COMMIT;"
        done
    } | sqlite3 "$1" >/dev/null
    sqlite_check "$1"
}

# sqlite_check DB: intact, with its 200 rows.
sqlite_check() {
    test "$(sqlite3 "$1" 'PRAGMA integrity_check;')" = ok
    test "$(sqlite3 "$1" 'SELECT count(*) FROM t;')" = 200
}
