//! The working copy's metadata: the only code that speaks SQL.
//!
//! Every statement against `metadata.db` lives in one of these files, as a
//! named function taking the connection ([`Conn`]) that [`Db::read`] and
//! [`Db::write`] hand out. Callers decide *what* to change (the POSIX rules
//! in `fs/`, the commit's order in `commit/`); these functions say *how* it is
//! stored.

pub(crate) mod commits;
pub(crate) mod db;
pub(crate) mod dentries;
pub(crate) mod dirty;
pub(crate) mod inodes;
pub(crate) mod orphans;
pub(crate) mod pins;
pub(crate) mod state;
pub(crate) mod xattrs;

pub(crate) use db::Db;

/// The database connection, as the closures of [`Db::read`] and
/// [`Db::write`] receive it: passed on to the functions of this module,
/// never used for SQL outside it.
pub(crate) type Conn = rusqlite::Connection;
