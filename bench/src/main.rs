//! `parley-bench`: the load generator (scenarios are being written).

fn main() {}
