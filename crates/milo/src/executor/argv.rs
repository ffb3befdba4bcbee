//! Which command lines need no shell: [`simple_argv`] splits a command into its program and
//! arguments when `sh -c "<command>"` would do nothing more than that, so the program can be
//! exec'd directly — GNU make's fast path (`construct_command_argv_internal`), and just as
//! conservative: any doubt leaves the command to the shell.

/// Characters that ask the shell for something: quoting, escapes, comments, expansions
/// (parameters, commands, globs, tildes, history), redirections, pipes, lists, sub-shells and
/// groups. A command containing one goes to the shell.
const SHELL_CHARS: &[u8] = b"#;&|<>(){}$`\\\"'*?[]~!^";

/// First words the shell handles itself: reserved words, and builtins (POSIX, dash's, bash's)
/// that differ from, or do not exist as, an external program of that name. `[` and `[[` are
/// refused for their bracket already.
const SHELL_WORDS: &[&[&str]] = &[RESERVED_WORDS, SPECIAL_BUILTINS, REGULAR_BUILTINS, OTHER_BUILTINS];

const RESERVED_WORDS: &[&str] = &[
    "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select", "then",
    "time", "until", "while",
];

const SPECIAL_BUILTINS: &[&str] = &[
    ".", ":", "break", "continue", "eval", "exec", "exit", "export", "readonly", "return", "set", "shift", "times",
    "trap", "unset",
];

/// POSIX's regular builtins but `true` and `false` (see [`PLAIN_BUILTINS`]).
const REGULAR_BUILTINS: &[&str] = &[
    "alias", "bg", "cd", "command", "fc", "fg", "getopts", "hash", "jobs", "kill", "newgrp", "pwd", "read", "type",
    "ulimit", "umask", "unalias", "wait",
];

/// dash's and bash's own, but `echo` (see [`PLAIN_BUILTINS`]).
const OTHER_BUILTINS: &[&str] = &[
    "bind",
    "builtin",
    "caller",
    "chdir",
    "compgen",
    "complete",
    "compopt",
    "declare",
    "dirs",
    "disown",
    "enable",
    "help",
    "history",
    "let",
    "local",
    "login",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "readarray",
    "shopt",
    "source",
    "suspend",
    "test",
    "typeset",
];

/// Builtins that behave exactly like the external program as long as no argument looks like
/// an option (backslashes, which `echo` may interpret, are refused anyway): dash's `echo -e x`
/// prints `-e x`, coreutils' prints `x`; coreutils' `true --help` prints its help.
const PLAIN_BUILTINS: &[&str] = &["echo", "false", "true"];

/// The words of `command` — the program, then its arguments — when running it needs no shell:
/// printable ASCII words separated by spaces and tabs, none of the [`SHELL_CHARS`], no
/// variable assignment first (`=` in the first word) and a first word that is not one of the
/// [`SHELL_WORDS`]. `None` when the shell is needed (or the command is blank).
pub(crate) fn simple_argv(command: &str) -> Option<Vec<&str>> {
    let plain = |b: u8| b == b' ' || b == b'\t' || (b.is_ascii_graphic() && !SHELL_CHARS.contains(&b));
    if !command.bytes().all(plain) {
        return None;
    }
    let words: Vec<&str> = command.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    let (&program, args) = words.split_first()?;
    if program.contains('=') || SHELL_WORDS.iter().any(|list| list.contains(&program)) {
        return None;
    }
    if PLAIN_BUILTINS.contains(&program) && args.iter().any(|a| a.starts_with('-')) {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_programs_with_plain_arguments_are_split_into_words() {
        let accepted: &[(&str, &[&str])] = &[
            ("true", &["true"]),
            ("echo hello world", &["echo", "hello", "world"]),
            ("  echo\thello   world \t", &["echo", "hello", "world"]),
            ("/usr/bin/env", &["/usr/bin/env"]),
            ("./build.sh --release", &["./build.sh", "--release"]),
            (
                "cargo build -p milo --jobs=4",
                &["cargo", "build", "-p", "milo", "--jobs=4"],
            ),
            (
                "dd if=in.bin of=out.bin bs=1M",
                &["dd", "if=in.bin", "of=out.bin", "bs=1M"],
            ),
            ("date +%Y-%m-%d", &["date", "+%Y-%m-%d"]),
            ("cp a,b @c d:e /tmp/x.y", &["cp", "a,b", "@c", "d:e", "/tmp/x.y"]),
            ("sleep 0.5", &["sleep", "0.5"]),
            ("echo plain words only", &["echo", "plain", "words", "only"]),
            ("false", &["false"]),
            ("env", &["env"]),
            ("/bin/pwd", &["/bin/pwd"]),
            ("python3 -m http.server", &["python3", "-m", "http.server"]),
            ("cdrecord -v", &["cdrecord", "-v"]),
            ("testsuite run", &["testsuite", "run"]),
        ];
        for &(command, words) in accepted {
            assert_eq!(simple_argv(command).as_deref(), Some(words), "{command:?}");
        }
    }

    #[test]
    fn commands_the_shell_must_interpret_are_refused() {
        let refused = [
            // Blank.
            "",
            "   ",
            " \t ",
            // Lists, pipes, redirections, background, sub-shells and groups.
            "true; false",
            "a && b",
            "a || b",
            "sleep 1 &",
            "ls | wc -l",
            "echo hi > out",
            "cat < in",
            "echo hi 2>&1",
            "(cd x)",
            "{ true; }",
            // Quoting and escapes.
            "echo 'a b'",
            "echo \"a b\"",
            "echo a\\ b",
            // Expansions.
            "echo $HOME",
            "echo ${HOME}",
            "echo `date`",
            "ls *.rs",
            "ls file?.rs",
            "ls [ab].rs",
            "ls ~",
            "ls ~/x",
            "echo a{b,c}",
            "echo !!",
            "echo a^b",
            // Comments.
            "true # comment",
            "#true",
            // Line breaks, controls and non-ASCII.
            "true\nfalse",
            "true\r",
            "echo a\u{0}b",
            "echo a\u{7f}",
            "echo a\u{b}b",
            "echo caf\u{e9}",
            "echo \u{a0}x",
            // Variable assignments.
            "A=1 env",
            "A=1",
            "PATH=/x:/y prog",
            "a=b=c",
            // Reserved words and builtins.
            "if true",
            "while true",
            "for x in a b",
            "case x in",
            "time sleep 1",
            "function f",
            "select x",
            ". ./env.sh",
            ": nothing",
            "cd /tmp",
            "exec sleep 1",
            "exit 3",
            "export A",
            "eval true",
            "set -e",
            "source x.sh",
            "command -v ls",
            "type ls",
            "hash ls",
            "read x",
            "wait",
            "trap x TERM",
            "ulimit -n",
            "umask 022",
            "unset A",
            "local a",
            "let a",
            "typeset a",
            "getopts ab x",
            "pwd",
            "pwd -P",
            "test -f x",
            "printf hello",
            "kill 1234",
            "declare a",
            "[ -f x ]",
            "[[ -f x ]]",
            // Builtins that match the program only without options.
            "echo -e hello",
            "echo -n hello",
            "echo hello -n",
            "true --help",
            "false --version",
        ];
        for command in refused {
            assert_eq!(simple_argv(command), None, "{command:?}");
        }
    }

    #[test]
    fn every_refusal_list_entry_is_refused_as_the_first_word_only() {
        for &word in SHELL_WORDS.iter().copied().flatten() {
            assert_eq!(simple_argv(word), None, "{word:?}");
            assert_eq!(simple_argv(&format!("{word} arg")), None, "{word:?}");
            assert_eq!(
                simple_argv(&format!("prog {word}")),
                Some(vec!["prog", word]),
                "{word:?}"
            );
        }
        for &word in PLAIN_BUILTINS {
            assert_eq!(simple_argv(&format!("{word} arg")), Some(vec![word, "arg"]), "{word:?}");
            assert_eq!(simple_argv(&format!("{word} -x")), None, "{word:?}");
        }
    }

    /// A character the shell interprets (or that [`simple_argv`] does not vouch for).
    fn special_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::sample::select(SHELL_CHARS.iter().map(|&b| char::from(b)).collect::<Vec<_>>()),
            proptest::sample::select(vec!['\n', '\r', '\0', '\u{7f}', '\u{1b}', '\u{b}', '\u{c}']),
            proptest::char::range('\u{80}', char::MAX),
        ]
    }

    proptest! {
        #[test]
        fn a_command_with_a_shell_character_anywhere_is_refused(
            before in "[ -~\t]{0,20}",
            special in special_char(),
            after in "[ -~\t]{0,20}",
        ) {
            let command = format!("{before}{special}{after}");
            prop_assert_eq!(simple_argv(&command), None, "{:?}", command);
        }

        #[test]
        fn plain_words_are_accepted_and_split_as_they_were_joined(
            program in "x[a-zA-Z0-9_./:,@%+-]{0,7}",
            args in proptest::collection::vec("[a-zA-Z0-9_./:,@%+=-]{1,8}", 0..5),
            gaps in proptest::collection::vec("[ \t]{1,3}", 5),
        ) {
            let mut command = program.clone();
            for (arg, gap) in args.iter().zip(&gaps) {
                command.push_str(gap);
                command.push_str(arg);
            }
            let want: Vec<&str> = std::iter::once(program.as_str()).chain(args.iter().map(String::as_str)).collect();
            prop_assert_eq!(simple_argv(&command), Some(want), "{:?}", command);
        }
    }
}
