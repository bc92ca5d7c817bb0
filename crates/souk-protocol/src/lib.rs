//! Everything on the wire between souk and sellers, in the format of KooGallery's public
//! "SaaS Access Guide V2.0" so that sellers integrated with that marketplace connect unchanged:
//! the lifecycle calls ([`activity`]), their signature ([`signature`]), the result codes
//! ([`result`]) and the encryption of access data ([`access_crypto`]); and the access-key
//! signature of the calls sellers make to souk ([`aksk`]).

pub mod access_crypto;
pub mod activity;
pub mod aksk;
pub mod result;
pub mod signature;
pub mod v1;

pub use activity::RefreshScene;
pub use activity::{Activity, AppInfo, InstanceInfo, SellerAnswer, StatusChange};
pub use result::{outcome, Outcome, ResultCode};

/// What can go wrong reading the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The signature does not match the body and key.
    #[error("signature does not match")]
    BadSignature,
    /// The timestamp is outside the accepted window, or not a number.
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    /// The nonce was seen before.
    #[error("nonce already used")]
    ReplayedNonce,
    /// A required parameter or field is missing or malformed.
    #[error("invalid parameter {0}")]
    InvalidParameter(String),
    /// Encrypted access data could not be decrypted with the key.
    #[error("cannot decrypt access data")]
    Decrypt,
}
