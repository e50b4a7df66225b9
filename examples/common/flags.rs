//! `--name value` flags, enough for the examples; a bad or unknown flag prints the usage and
//! exits with code 2.

use std::str::FromStr;

/// The flags given on the command line.
pub(crate) struct Flags {
    given: Vec<(String, String)>,
    usage: &'static str,
}

impl Flags {
    /// Reads `std::env::args`, accepting only the flags named in `known` (without `--`).
    pub(crate) fn parse(known: &[&str], usage: &'static str) -> Flags {
        let mut given = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let name = arg.strip_prefix("--").unwrap_or_default();
            if !known.contains(&name) {
                fail(usage, &format!("unknown argument {arg:?}"));
            }
            let Some(value) = args.next() else {
                fail(usage, &format!("{arg} needs a value"));
            };
            given.push((name.to_string(), value));
        }
        Flags { given, usage }
    }

    /// The value of `--name`, if given.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The value of `--name` parsed, or `default`.
    pub(crate) fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.text(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| fail(self.usage, &format!("--{name} {v:?} is not valid"))),
        }
    }
}

fn fail(usage: &str, message: &str) -> ! {
    eprintln!("{message}\n\n{usage}");
    std::process::exit(2)
}
