//! The tonic adapter: authentication, conversion and error mapping only.
//!
//! Every handler authenticates the caller, converts the request into plain domain input,
//! calls the gateway, and converts back ([`SentinelService`]). This module never touches the store.
//! The span and the duration metric of each call come from [`rpc_layer`], around the whole
//! service.

pub mod codec;
pub mod convert;
pub mod limits;
pub mod rpc_layer;
mod service;
mod status;
pub mod stream;

pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("sentinel.v1");

    /// The descriptor set served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sentinel_descriptor.bin"));
}

pub use service::SentinelService;
pub use status::{decode_errors_are_invalid_argument, status};
