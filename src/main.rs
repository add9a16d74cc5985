//! The `atgw` binary: parse the command line and hand off to the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    atgw::cli::main()
}
