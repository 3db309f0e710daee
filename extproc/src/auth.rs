//! Upstream credentials that are more than a header copied from the config: one module per
//! kind (`AWSCredentials` SigV4 in [`aws`]; OAuth tokens minted from `GCPCredentials` and
//! `AzureCredentials` in [`gcp`] and [`azure`], cached and refreshed by [`token`]).

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod token;
