//! The `bgagent` command; everything lives in the library so the pip install can run it too.

fn main() {
    // This binary is also its own supervisor.
    bgagent::init();
    std::process::exit(bgagent::cli::main(std::env::args_os().collect()));
}
