//! Ringleader's integration tests: one binary, a module per concern. Every distributed
//! result is checked against a plain sequential computation of the same input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod caching;
mod chaos;
mod cli;
mod cluster;
mod examples;
mod faults;
mod fuzz;
mod helpers;
mod history;
mod hosts;
mod namespace;
mod operators;
mod oracles;
mod outputs;
mod raft;
mod replicas;
mod shared;
mod shipping;
mod sources;
mod spill;
mod tenants;
mod web;
