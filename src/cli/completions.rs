//! `geoctl completions SHELL` and `geoctl man`: generated from the clap definitions at run time,
//! so they never drift from the real commands and flags.

use clap::CommandFactory;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script, e.g. `geoctl completions bash > /etc/bash_completion.d/geoctl`.
pub fn completions(args: Args) -> crate::error::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "geoctl", &mut std::io::stdout().lock());
    Ok(())
}

/// Prints the man page (roff), e.g. `geoctl man > /usr/local/share/man/man1/geoctl.1`.
pub fn man() -> crate::error::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
    Ok(())
}
