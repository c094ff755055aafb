//! warden: a Docker-native intrusion-prevention sidecar.
//!
//! Data flows one way: sources read [`core::LogLine`]s, [`filter`]s turn them
//! into [`core::Failure`]s, [`jail`]s decide [`core::Ban`]s, the [`store`]
//! persists them and the firewall enforces them. [`config`] describes all of it.
//! Lower layers never import higher ones: `core` imports nothing of ours.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod filter;
pub mod firewall;
pub mod jail;
pub mod source;
pub mod store;
