//! Turn-engine scenarios on a fake clock, one per module.

#![allow(unreachable_pub, missing_docs)]

mod harness;

mod barge_in;
mod config_change;
mod false_interruption;
mod greeting;
mod hangup_mid_turn;
mod long_silence;
mod one_turn;
mod provider_failure;
mod talk_over;
mod tools;
