//! Identifiers: a prefix naming the kind, then 26 Crockford base-32 characters of which the first
//! 10 encode the creation time in milliseconds (so ids sort by age) and the rest 80 random bits
//! (so they cannot be guessed).

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Builds an id such as `ord_01jd…` from a prefix, a time and 10 random bytes.
pub fn make_id(prefix: &str, unix_millis: i64, random: [u8; 10]) -> String {
    let mut value: u128 = (u128::from(unix_millis.max(0) as u64) & ((1u128 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 31) as usize;
        out.push(ALPHABET[idx] as char);
    }
    out
}

/// Whether `s` has the shape of an id with `prefix`: the prefix, `_`, then 26 base-32 characters.
pub fn well_formed(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 26 && body.bytes().all(|b| ALPHABET.contains(&b)))
}

/// An identifier kind: its prefix, and conversions from and to its text.
pub trait Id: Sized + From<String> + AsRef<str> {
    /// The prefix naming the kind, e.g. `ord`.
    const PREFIX: &'static str;
}

macro_rules! ids {
    ($($(#[$meta:meta])* $name:ident = $prefix:literal;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Id for $name {
            const PREFIX: &'static str = $prefix;
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    )+};
}

ids! {
    /// An account: a buyer, a seller's company or an operator.
    AccountId = "acc";
    /// A merchant (or an application to become one).
    MerchantId = "mer";
    /// A product.
    ProductId = "prd";
    /// One revision (draft or application) of a product's content.
    RevisionId = "rev";
    /// A plan of a product.
    PlanId = "pln";
    /// An order.
    OrderId = "ord";
    /// A subscribed instance.
    InstanceId = "ins";
    /// A ledger entry.
    EntryId = "led";
    /// A timeline event.
    EventId = "evt";
    /// A background job.
    JobId = "job";
    /// An operator's promotion of a product.
    PromotionId = "prm";
    /// One hourly charge of an instance's metered use.
    UsageChargeId = "usg";
    /// A notification to one person.
    NotificationId = "ntf";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_well_formed_only_with_its_prefix_and_alphabet() {
        let id = make_id("ord", 1_700_000_000_000, [7; 10]);
        assert!(well_formed("ord", &id));
        assert!(!well_formed("ins", &id));
        assert!(!well_formed("ord", &id[..id.len() - 1]));
        assert!(!well_formed("ord", &format!("{id}0")));
        assert!(
            !well_formed("ord", &id.replace('0', "u")),
            "u is not in the alphabet"
        );
        assert!(!well_formed("ord", "zzz"));
        assert!(!well_formed("ord", ""));
    }

    #[test]
    fn ids_sort_by_time_and_carry_their_prefix() {
        let a = make_id("ord", 1_000, [255; 10]);
        let b = make_id("ord", 1_001, [0; 10]);
        assert!(a < b);
        assert!(a.starts_with("ord_"));
        assert_eq!(a.len(), 30);
    }
}
