//! The README's Rust quick start is examples/quickstart.rs, which `cargo test` builds and CI runs.

#[test]
fn the_readme_shows_the_quickstart_example_as_it_is() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    let block = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a ```rust block");
    assert_eq!(block, example, "README.md's Rust block differs from examples/quickstart.rs");
}
