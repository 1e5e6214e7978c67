//! The test environment: real components started on loopback by the tests themselves.
#![allow(dead_code)]

pub mod cdn;
pub mod cluster;
pub mod enhanced_source;
pub mod gateway;
pub mod helm;
pub mod kube;
pub mod livestream;
pub mod lossy_proxy;
pub mod media;
pub mod minio;
pub mod peer;
pub mod player;
pub mod process;
pub mod rtmp_publisher;
pub mod stream;
