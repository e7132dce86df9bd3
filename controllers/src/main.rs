//! `theseus-controller`.

fn main() {}
