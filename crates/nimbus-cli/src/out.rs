//! Lines on standard output for the listing commands (`ls`, `log`), whose
//! output people pipe into `head` or `grep -m`: when the reader goes away,
//! the command stops quietly with success, as `ls | head` does, instead of
//! `println!`'s panic on a closed pipe.

use std::io::Write;

/// Writes one line to standard output.
pub fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // Nothing more will be read; these commands change nothing, so
            // there is nothing to finish first.
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
