//! The seller's result codes and what souk does with each.

/// A result code from the guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// `000000`.
    Success,
    /// `000001`: the seller could not authenticate souk's call.
    AuthFailed,
    /// `000002`.
    InvalidParameter,
    /// `000003`.
    InstanceNotFound,
    /// `000004`: still working on it.
    Processing,
    /// `000005`.
    InternalError,
    /// `000100`..`000107`: the seller refuses to create the instance, for the reason given.
    CreationRefused(u8),
}

impl ResultCode {
    /// The six digits.
    pub fn wire(self) -> String {
        match self {
            ResultCode::Success => "000000".into(),
            ResultCode::AuthFailed => "000001".into(),
            ResultCode::InvalidParameter => "000002".into(),
            ResultCode::InstanceNotFound => "000003".into(),
            ResultCode::Processing => "000004".into(),
            ResultCode::InternalError => "000005".into(),
            ResultCode::CreationRefused(n) => format!("0001{n:02}"),
        }
    }

    /// Reads a code; an unknown code is `None` and treated as a transport failure (retried).
    pub fn parse(code: &str) -> Option<ResultCode> {
        Some(match code {
            "000000" => ResultCode::Success,
            "000001" => ResultCode::AuthFailed,
            "000002" => ResultCode::InvalidParameter,
            "000003" => ResultCode::InstanceNotFound,
            "000004" => ResultCode::Processing,
            "000005" => ResultCode::InternalError,
            c if c.len() == 6 && c.starts_with("0001") => {
                let n: u8 = c[4..].parse().ok()?;
                if n <= 7 {
                    ResultCode::CreationRefused(n)
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }

    /// Why the seller refused to create an instance, for the buyer.
    pub fn refusal_reason(self) -> &'static str {
        match self {
            ResultCode::CreationRefused(0) => "the seller has no resources left",
            ResultCode::CreationRefused(1) => "a phone number is missing or already taken",
            ResultCode::CreationRefused(2) => "an e-mail address is missing or already taken",
            ResultCode::CreationRefused(3) => "the buyer already bought this product",
            ResultCode::CreationRefused(4) => {
                "the seller had an internal error creating the instance"
            }
            ResultCode::CreationRefused(5) => "the buyer is already subscribed",
            ResultCode::CreationRefused(6) => "the product is sold out",
            ResultCode::CreationRefused(7) => "the e-mail domain is already taken",
            ResultCode::AuthFailed => {
                "the seller could not authenticate the marketplace (wrong signing key)"
            }
            ResultCode::InvalidParameter => "the seller reported an invalid parameter",
            _ => "the seller could not create the instance",
        }
    }
}

/// What souk does after an answer (or no answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Ask again later: `queryInstance` for a creation in progress.
    Pending,
    /// A transient failure: retry with backoff.
    Retry,
    /// A final failure: do not retry.
    Final,
}

/// Classifies a code (or `None` for a transport failure or unknown code) for `activity`.
pub fn outcome(code: Option<ResultCode>, activity: &str) -> Outcome {
    match code {
        Some(ResultCode::Success) => Outcome::Done,
        // Releasing or refreshing what the seller no longer has is the end state we wanted.
        Some(ResultCode::InstanceNotFound) if activity == "releaseInstance" => Outcome::Done,
        Some(ResultCode::Processing) => Outcome::Pending,
        Some(ResultCode::InternalError) | None => Outcome::Retry,
        Some(
            ResultCode::AuthFailed
            | ResultCode::InvalidParameter
            | ResultCode::InstanceNotFound
            | ResultCode::CreationRefused(_),
        ) => Outcome::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_classify() {
        for c in [
            "000000", "000001", "000002", "000003", "000004", "000005", "000100", "000107",
        ] {
            assert_eq!(ResultCode::parse(c).unwrap().wire(), c);
        }
        assert_eq!(ResultCode::parse("000108"), None);
        assert_eq!(ResultCode::parse("abc"), None);
        assert_eq!(
            outcome(ResultCode::parse("000003"), "releaseInstance"),
            Outcome::Done
        );
        assert_eq!(
            outcome(ResultCode::parse("000003"), "updateInstanceStatus"),
            Outcome::Final
        );
        assert_eq!(
            outcome(ResultCode::parse("000005"), "newInstance"),
            Outcome::Retry
        );
        assert_eq!(outcome(None, "newInstance"), Outcome::Retry);
        assert_eq!(
            outcome(ResultCode::parse("000104"), "newInstance"),
            Outcome::Final
        );
        assert_eq!(
            outcome(ResultCode::parse("000004"), "newInstance"),
            Outcome::Pending
        );
    }
}
