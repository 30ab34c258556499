//! The `bgagent` command; everything lives in the library so the pip install can run it too.

fn main() {
    std::process::exit(_core::cli::main(std::env::args_os().collect()));
}
