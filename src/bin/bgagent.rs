//! The `bgagent` command; everything lives in the library so the pip install can run it too.

use _core::exec::supervisor;

fn main() {
    // This binary is also its own supervisor (started with the variable set).
    if let Some(owner) = std::env::var_os(supervisor::ENV) {
        supervisor::run(&owner.to_string_lossy());
    }
    supervisor::set_command(vec!["/proc/self/exe".into()]);
    std::process::exit(_core::cli::main(std::env::args_os().collect()));
}
