//! What a command-line program offers its shell and its manual: completion
//! scripts and a man page, generated from the same clap definition as
//! `--help`, so they never disagree with it.

use std::io::Write;

/// The subcommands every binary has for its shell and manual; flatten into
/// the binary's own subcommand enum with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ShellCommand {
    /// Prints a shell completion script.
    ///
    /// For example, for bash:
    /// `PROGRAM completions bash > ~/.local/share/bash-completion/completions/PROGRAM`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the manual page.
    ///
    /// In roff, for example: `PROGRAM man > ~/.local/share/man/man1/PROGRAM.1`.
    Man,
}

impl ShellCommand {
    /// Writes the completion script or the man page for `command` to
    /// stdout.
    pub fn run(&self, mut command: clap::Command) -> anyhow::Result<()> {
        // Written whole into memory first: clap_complete panics on a
        // failed write (a closed pipe), and a program must not.
        let mut text = Vec::new();
        match self {
            ShellCommand::Completions { shell } => {
                let name = command.get_name().to_owned();
                clap_complete::generate(*shell, &mut command, name, &mut text);
            }
            ShellCommand::Man => clap_mangen::Man::new(command).render(&mut text)?,
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&text)?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Debug, Parser)]
    #[command(name = "example", about = "Forwards examples.")]
    struct Cli {
        #[command(subcommand)]
        command: Option<Command>,
        /// The stream.
        #[arg(long)]
        stream_name: Option<String>,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        #[command(flatten)]
        Shell(ShellCommand),
    }

    #[test]
    fn the_subcommands_parse_and_generate_from_the_definition() -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(["example", "completions", "bash"])?;
        assert!(matches!(
            cli.command,
            Some(Command::Shell(ShellCommand::Completions {
                shell: clap_complete::Shell::Bash
            }))
        ));
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "example",
            &mut script,
        );
        let script = String::from_utf8(script)?;
        assert!(script.contains("--stream-name"), "{script}");

        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut page)?;
        let page = String::from_utf8(page)?;
        assert!(page.contains(".TH example"), "{page}");
        assert!(page.contains("Forwards examples."), "{page}");
        Ok(())
    }
}
