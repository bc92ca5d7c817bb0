//! The seller endpoint check: before a product is submitted (from the seller centre) or while an
//! endpoint is being built (`souk seller check-endpoint`), souk walks a made-up instance through
//! every call of the protocol it speaks (V2, or the older V1) with `testFlag` `"1"` and reports,
//! call by call, whether the seller answered as the protocol asks. It also sends three calls the
//! seller must refuse: one signed with the wrong key, one dated five minutes ago, and one that
//! repeats an accepted call exactly (its nonce, or under V1 its `authToken`).

use crate::workers::seller::{send, Request, Wire};
use chrono::{DateTime, Utc};
use rand::Rng;
use souk_protocol::{Activity, RefreshScene, SellerAnswer, StatusChange};
use std::time::Instant;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// What the seller answered, or why the check failed or was skipped.
    pub detail: String,
    pub latency_ms: u64,
}

/// Every check, in the order they ran.
#[derive(Debug, Clone)]
pub struct Report {
    pub endpoint: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// A client for checks run from the seller's own machine (`souk seller check-endpoint`): the
/// 5-second answer time souk allows by default, no redirects. The server uses its guarded client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("souk/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with static settings and the bundled TLS roots")
}

/// How the checks reach the seller.
pub struct Target<'a> {
    pub http: &'a reqwest::Client,
    pub endpoint: &'a str,
    pub key: &'a str,
    /// The most bytes an answer may have.
    pub answer_limit: usize,
    /// The protocol, and whether answers must be signed (a `Body-Sign` made with `key`, or the
    /// check fails as the call would).
    pub wire: Wire,
}

impl Wire {
    /// The wire of a product speaking `protocol`; a V1 `newInstance` carries made-up terms.
    pub fn for_check(protocol: souk_core::review::SellerProtocol, signed_answers: bool) -> Wire {
        match protocol {
            souk_core::review::SellerProtocol::V2 => Wire::V2 { signed_answers },
            souk_core::review::SellerProtocol::V1 => Wire::V1 {
                terms: Some(souk_protocol::v1::Terms {
                    customer_id: "TESTCUSTOMER".into(),
                    customer_name: "Test customer".into(),
                    product_id: "TESTPRODUCT".into(),
                    sku_code: "TESTSKU".into(),
                    period_type: "month".into(),
                    period_number: "1".into(),
                    trial: false,
                    expire_time: (Utc::now() + chrono::Duration::days(30))
                        .format("%Y%m%d%H%M%S")
                        .to_string(),
                }),
            },
        }
    }
}

struct Answered {
    answer: Result<SellerAnswer, String>,
    latency_ms: u64,
}

impl Target<'_> {
    async fn call(
        &self,
        activity: &Activity,
        key: &str,
        at: Option<DateTime<Utc>>,
        nonce: Option<&str>,
    ) -> Answered {
        let started = Instant::now();
        let request = Request {
            activity,
            test: true,
            sign_key: key,
            answer_key: self.key,
            at,
            nonce,
            wire: &self.wire,
        };
        let answer = send(self.http, self.answer_limit, self.endpoint, &request).await;
        Answered {
            answer,
            latency_ms: started.elapsed().as_millis() as u64,
        }
    }

    async fn signed(&self, activity: &Activity) -> Answered {
        self.call(activity, self.key, None, None).await
    }
}

/// Whether an answer's code has the protocol's shape (six digits): only then is it a seller's
/// answer, shown with its message.
fn well_formed(a: &SellerAnswer) -> bool {
    a.result_code.len() == 6 && a.result_code.bytes().all(|b| b.is_ascii_digit())
}

fn said(a: &Result<SellerAnswer, String>) -> String {
    match a {
        Ok(a) if well_formed(a) => format!("{} {}", a.result_code, a.result_msg),
        Ok(_) => "the answer's resultCode is not a six-digit code".to_owned(),
        Err(e) => e.clone(),
    }
}

fn check(name: &'static str, a: &Answered, passed: bool, note: &str) -> Check {
    let mut detail = said(&a.answer);
    if !note.is_empty() {
        detail = format!("{detail} ({note})");
    }
    Check {
        name,
        passed,
        detail,
        latency_ms: a.latency_ms,
    }
}

fn code_is(a: &Answered, codes: &[&str]) -> bool {
    a.answer
        .as_ref()
        .is_ok_and(|a| codes.contains(&a.result_code.as_str()))
}

/// A call the seller must refuse: with an error code, or HTTP 401 or 403. An endpoint that cannot
/// be reached, or answers that nothing is there (404), has refused nothing.
fn refused(name: &'static str, a: &Answered) -> Check {
    let (passed, note) = match &a.answer {
        Ok(answer) if answer.result_code == "000000" => (
            false,
            "it was accepted: the endpoint must check every call's signature and timestamp",
        ),
        Ok(answer) if well_formed(answer) => (true, ""),
        Ok(_) => (false, "a refusal is a six-digit error code, or HTTP 401 or 403"),
        Err(e) if e.starts_with("HTTP 401") || e.starts_with("HTTP 403") => (true, ""),
        Err(e) if e.starts_with("HTTP 4") => (
            false,
            "not a refusal of the call: is the endpoint's URL right? A refusal is an error code, or HTTP 401 or 403",
        ),
        Err(e) if e.starts_with("HTTP ") => (
            false,
            "a refusal is an error code or HTTP 401 or 403, not a server error",
        ),
        Err(e) if e.contains("Body-Sign") => (false, "a refusal is signed like any answer"),
        Err(e) if e.starts_with("the answer") => (
            false,
            "a refusal is a JSON answer with an error code, or HTTP 401 or 403",
        ),
        Err(_) => (false, "the endpoint did not answer"),
    };
    check(name, a, passed, note)
}

/// Runs every check against `target`.
pub async fn run(target: &Target<'_>) -> Report {
    let order = format!("TEST{:016}", rand::thread_rng().gen_range(0..10u64.pow(16)));
    let line = format!("{order}-000001");
    let new = Activity::NewInstance {
        order_id: order.clone(),
        order_line_id: line.clone(),
        business_id: format!("test-{order}"),
    };
    let mut checks = Vec::new();

    let forged = target
        .call(&new, "souk-check-a-key-that-is-not-yours", None, None)
        .await;
    checks.push(refused(
        "a call signed with another key is refused",
        &forged,
    ));
    let stale = target
        .call(
            &new,
            target.key,
            Some(Utc::now() - chrono::Duration::minutes(5)),
            None,
        )
        .await;
    checks.push(refused("a call dated 5 minutes ago is refused", &stale));

    // The first newInstance, then the very same request again: a replay.
    let (at, nonce) = (Some(Utc::now()), souk_protocol::signature::new_nonce());
    let first = target.call(&new, target.key, at, Some(&nonce)).await;
    let replayed = target.call(&new, target.key, at, Some(&nonce)).await;
    let id = first
        .answer
        .as_ref()
        .ok()
        .filter(|a| a.result_code == "000000")
        .and_then(|a| a.instance_id.clone())
        .filter(|i| !i.is_empty() && i.len() <= 64);
    checks.push(check(
        "newInstance creates an instance",
        &first,
        id.is_some(),
        match (&id, code_is(&first, &["000004"])) {
            (Some(_), _) => "",
            (None, true) => "000004: provisioning asynchronously; answer 000000 with the instanceId for a test call",
            (None, false) => "expected 000000 with an instanceId of 1 to 64 characters",
        },
    ));
    // A replay is of a call the endpoint accepted; when it took none there was nothing to replay.
    let replay = "the same call sent again (a replay) is refused";
    checks.push(if code_is(&first, &["000000", "000004"]) {
        refused(replay, &replayed)
    } else {
        Check {
            name: replay,
            passed: false,
            detail: "skipped: the endpoint did not accept the first call, so nothing was replayed"
                .into(),
            latency_ms: 0,
        }
    });
    let Some(id) = id else {
        for name in [
            "newInstance again with the same businessId answers the same instance",
            "queryInstance answers the instance",
            "refreshInstance is accepted",
            "updateInstanceStatus FREEZE is accepted",
            "updateInstanceStatus UNFREEZE is accepted",
            "upgradeInstance is answered",
            "releaseInstance is accepted",
            "releaseInstance again is harmless",
        ] {
            checks.push(Check {
                name,
                passed: false,
                detail: "skipped: newInstance gave no instance".into(),
                latency_ms: 0,
            });
        }
        return Report {
            endpoint: target.endpoint.to_owned(),
            checks,
        };
    };

    let again = target.signed(&new).await;
    let same = again
        .answer
        .as_ref()
        .is_ok_and(|a| a.result_code == "000000" && a.instance_id.as_deref() == Some(&id));
    checks.push(check(
        "newInstance again with the same businessId answers the same instance",
        &again,
        same,
        if same {
            ""
        } else {
            "a repeat must not create a second instance"
        },
    ));
    let query = target
        .signed(&Activity::QueryInstance {
            instance_ids: vec![id.clone()],
        })
        .await;
    let found = query.answer.as_ref().is_ok_and(|a| {
        a.result_code == "000000"
            && a.info
                .as_ref()
                .is_some_and(|info| info.iter().any(|i| i.instance_id == id))
    });
    checks.push(check(
        "queryInstance answers the instance",
        &query,
        found,
        if found {
            ""
        } else {
            "expected 000000 with the instance in info"
        },
    ));
    let expire = (Utc::now() + chrono::Duration::days(30))
        .format("%Y%m%d%H%M%S")
        .to_string();
    let steps: [(&'static str, Activity, &[&str]); 6] = [
        (
            "refreshInstance is accepted",
            Activity::RefreshInstance {
                instance_id: id.clone(),
                order_id: order.clone(),
                order_line_id: line.clone(),
                product_id: "TESTPRODUCT".into(),
                expire_time: expire,
                scene: RefreshScene::Renewal,
            },
            &["000000"],
        ),
        (
            "updateInstanceStatus FREEZE is accepted",
            Activity::UpdateInstanceStatus {
                instance_id: id.clone(),
                status: StatusChange::Freeze,
            },
            &["000000"],
        ),
        (
            "updateInstanceStatus UNFREEZE is accepted",
            Activity::UpdateInstanceStatus {
                instance_id: id.clone(),
                status: StatusChange::Unfreeze,
            },
            &["000000"],
        ),
        (
            "upgradeInstance is answered",
            Activity::UpgradeInstance {
                instance_id: id.clone(),
                order_id: order.clone(),
                order_line_id: line.clone(),
                product_id: "TESTPRODUCT".into(),
            },
            // Moved to the new plan, or refused by a seller without plan changes (the kit's
            // default): either is an answer souk can act on.
            &["000000", "000001"],
        ),
        (
            "releaseInstance is accepted",
            Activity::ReleaseInstance {
                instance_id: id.clone(),
                order_id: order.clone(),
                order_line_id: line.clone(),
            },
            &["000000"],
        ),
        (
            "releaseInstance again is harmless",
            Activity::ReleaseInstance {
                instance_id: id.clone(),
                order_id: order,
                order_line_id: line,
            },
            // Already released: done, or "does not exist", which for a release means done.
            &["000000", "000003"],
        ),
    ];
    for (name, activity, ok) in steps {
        let a = target.signed(&activity).await;
        let passed = code_is(&a, ok);
        let expected = if passed || a.answer.is_err() {
            String::new()
        } else {
            format!("expected {}", ok.join(" or "))
        };
        checks.push(check(name, &a, passed, &expected));
    }
    Report {
        endpoint: target.endpoint.to_owned(),
        checks,
    }
}
