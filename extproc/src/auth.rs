//! Upstream credentials that are more than a header copied from the config: one module per
//! kind (`AWSCredentials` SigV4 in [`aws`]).

pub mod aws;
