//! Metered billing through the API: on-demand and package plans, usage reports answered record
//! by record, replays counted once (also concurrently), hourly charges with tiers, quotas, and
//! arrears that freeze nothing a top-up cannot bring back.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

fn record(
    id: &str,
    instance: &str,
    dimension: &str,
    quantity: Value,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Value {
    json!({"record_id": id, "instance_id": instance, "dimension": dimension, "quantity": quantity,
           "usage_start": start.to_rfc3339(), "usage_end": end.to_rfc3339()})
}

fn statuses(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["reason"].as_str() {
            Some(reason) => format!("{}:{reason}", r["status"].as_str().unwrap()),
            None => r["status"].as_str().unwrap().to_owned(),
        })
        .collect()
}

async fn balance(buyer: &User) -> String {
    buyer.json("/v1/balance").await["balances"][0]["amount"]
        .as_str()
        .unwrap()
        .to_owned()
}

on_both_databases! {
    async fn metered_use_is_counted_once_charged_hourly_and_arrears_are_recoverable(backend) {
        let app = TestApp::spawn(backend).await;
        // The usage page counts the running month: the hours and days walked below stay in one.
        app.to_early_in_next_month().await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme API", &endpoint, "1");
        body["plans"] = json!([
            {"name": "Pay as you go", "currency": "CNY", "dimensions": [
                {"key": "api_calls", "unit": "1,000 calls", "price": "0.80", "tiers": [{"from": "100", "price": "0.50"}]}]},
            {"name": "Starter pack", "currency": "CNY", "monthly_price": "30.00", "dimensions": [
                {"key": "api_calls", "unit": "1,000 calls", "price": "0.80", "included": "50", "overage": "refuse"}]}
        ]);
        body["signing_key"] = json!(KEY);
        let (product, on_demand_plan, _) = app.listed_product_with(&op, &seller, body).await;
        let listed = app.public_json(&format!("/v1/products/{product}")).await;
        let package_plan = listed["plans"][1]["id"].as_str().unwrap().to_owned();
        assert_eq!(listed["plans"][0]["dimensions"][0]["tiers"][0]["from"], "100", "{listed}");

        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        // Bought on demand: nothing charged, never expires while the account pays.
        let order = buyer.expect_post("/v1/orders", json!({"plan_id": on_demand_plan, "period": "on_demand", "periods": 1}), StatusCode::CREATED).await;
        assert_eq!(order["amount"]["amount"], "0.00");
        assert_eq!(order["valid"], true, "an on-demand order counts though nothing was paid up front");
        let instance = order["instance_id"].as_str().unwrap().to_owned();
        let path = format!("/v1/instances/{instance}");
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert!(i["expires_at"].as_str().unwrap().starts_with("9999"), "{i}");
        assert_eq!(balance(&buyer).await, "100.00");

        // Each record is answered on its own. An hour later, so use from half an hour ago was
        // use of the instance; use over before it was bought is refused, use that spans the
        // purchase taken. Later still to half past an hour: the use below, from half an hour to
        // a minute ago, is then all in an hour that has not ended, which the rater leaves alone.
        let bought = app.state.now();
        let later = bought + Duration::hours(1);
        let half_past = chrono::DurationRound::duration_trunc(later, Duration::hours(1)).unwrap() + Duration::minutes(30);
        let half_past = if half_past < later { half_past + Duration::hours(1) } else { half_past };
        app.advance((half_past - bought).num_seconds()).await;
        let now = app.state.now();
        let (start, end) = (now - Duration::minutes(30), now - Duration::minutes(1));
        let batch = json!({"records": [
            record("r-1", &instance, "api_calls", json!("10.5"), start, end),
            record("r-1", &instance, "api_calls", json!("10.5"), start, end),
            record("r-2", "ins_nope", "api_calls", json!(1), start, end),
            record("r-3", &instance, "storage", json!(1), start, end),
            record("r-4", &instance, "api_calls", json!("-1"), start, end),
            record("r-5", &instance, "api_calls", json!(1), end, start),
            record("r-6", &instance, "api_calls", json!(1), now - Duration::hours(9), now - Duration::hours(8)),
            record("r-7", &instance, "api_calls", json!(1), now, now + Duration::hours(1)),
            record("r-8", &instance, "api_calls", json!("1e3"), start, end),
            record("r-12", &instance, "api_calls", json!(1), bought - Duration::minutes(20), bought - Duration::minutes(6)),
            record("r-13", &instance, "api_calls", json!(0), bought - Duration::minutes(30), end),
            // A record rejected, then sent right: nothing was counted for its id, so it counts.
            record("r-14", "ins_nope", "api_calls", json!(0), start, end),
            record("r-14", &instance, "api_calls", json!(0), start, end),
            // Text PostgreSQL cannot store is answered per record like any other.
            record("r-15", &format!("{instance}\u{0}"), "api_calls", json!(1), start, end),
            record("r-16", &instance, "api_calls\u{0}", json!(1), start, end),
        ]});
        let answer = seller.expect_post("/v1/metering/usage", batch.clone(), StatusCode::OK).await;
        assert_eq!(statuses(&answer), [
            "accepted", "duplicate", "rejected:unknown_instance", "rejected:unknown_dimension", "rejected:invalid",
            "rejected:start_after_end", "rejected:too_old", "rejected:in_future", "rejected:invalid",
            "rejected:before_instance", "accepted", "rejected:unknown_instance", "accepted",
            "rejected:unknown_instance", "rejected:unknown_dimension",
        ], "{answer}");
        assert_eq!((answer["accepted"].as_u64(), answer["duplicates"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(1), Some(11)));
        // Another seller cannot report use of this instance; a buyer cannot report at all.
        let other = app.merchant(&op, "seller@other.test").await;
        let theirs = other.expect_post("/v1/metering/usage", json!({"records": [record("x-1", &instance, "api_calls", json!(1), start, end)]}), StatusCode::OK).await;
        assert_eq!(statuses(&theirs), ["rejected:unknown_instance"], "another seller's instance is not told apart from none");
        assert_problem(buyer.post("/v1/metering/usage", batch.clone()).await, StatusCode::FORBIDDEN, None).await;
        assert_problem(seller.post("/v1/metering/usage", json!({"records": []})).await, StatusCode::UNPROCESSABLE_ENTITY, Some("records")).await;
        // A batch that is not well formed is refused whole, naming the field; nothing is counted.
        let malformed = json!({"records": [record("m-1", &instance, "api_calls", json!(1), start, end), {"record_id": "m-2", "instance_id": instance}]});
        assert_problem(seller.post("/v1/metering/usage", malformed).await, StatusCode::UNPROCESSABLE_ENTITY, None).await;
        let no_id = json!({"records": [record("", &instance, "api_calls", json!(1), start, end)]});
        assert_problem(seller.post("/v1/metering/usage", no_id).await, StatusCode::UNPROCESSABLE_ENTITY, Some("records[0].record_id")).await;

        // The same batch ten times at once: counted once.
        let replay = json!({"records": [
            record("r-9", &instance, "api_calls", json!(20), start, end),
            record("r-10", &instance, "api_calls", json!("0.25"), start, end),
        ]});
        let seller = std::sync::Arc::new(seller);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (seller, replay) = (seller.clone(), replay.clone());
                tokio::spawn(async move { seller.post("/v1/metering/usage", replay).await })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            let a = t.await.unwrap();
            assert_eq!(a.status(), StatusCode::OK);
            let a: Value = a.json().await.unwrap();
            accepted += a["accepted"].as_u64().unwrap();
        }
        assert_eq!(accepted, 2, "each record accepted exactly once");
        let usage = buyer.json(&format!("{path}/usage")).await;
        assert_eq!((usage["dimensions"][0]["pending"].as_str(), usage["dimensions"][0]["rated"].as_str()), (Some("30.75"), Some("0")), "{usage}");

        // Once the hour has ended it is charged: 30.75 x 0.80 = 24.60.
        app.advance(3600).await;
        let usage = buyer.wait_for(&format!("{path}/usage"), |u| u["dimensions"][0]["rated"] == "30.75").await;
        assert_eq!(usage["dimensions"][0]["charged"]["amount"], "24.60", "{usage}");
        assert_eq!(usage["days"][0]["quantity"], "30.75");
        assert_eq!(balance(&buyer).await, "75.40");
        let sold = seller.json("/v1/seller/usage").await;
        assert_eq!((sold["rated"][0]["quantity"].as_str(), sold["rated"][0]["charged"]["amount"].as_str()), (Some("30.75"), Some("24.60")), "{sold}");

        // Past the first tier: 100 at 0.80 and 100.75 at 0.50 is 130.38 (rounded once), so this
        // hour charges 130.38 - 24.60 = 105.78, which takes the balance below zero: arrears.
        let now = app.state.now();
        seller.expect_post("/v1/metering/usage", json!({"records": [
            record("r-11", &instance, "api_calls", json!(170), now - Duration::minutes(20), now - Duration::minutes(10))]}), StatusCode::OK).await;
        app.advance(3600).await;
        let i = buyer.wait_for(&path, |v| v["state"] == "grace").await;
        assert!(i["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "instance.arrears"), "{i}");
        // Its page says why it runs on grace and until when; the buyer is told to top up.
        let page = buyer.get(&format!("/instances/{instance}")).await.text().await.unwrap();
        assert!(page.contains("Your balance is below what the account may owe") && page.contains("<dt>Frozen unless topped up on</dt>"), "{page}");
        let balance_page = buyer.get("/balance").await.text().await.unwrap();
        assert!(balance_page.contains("Your balance is below what the account may owe"), "{balance_page}");
        let told = buyer.wait_for("/v1/notifications", |v| v.to_string().contains("Top up to keep Acme API")).await;
        assert!(told.to_string().contains("Acme API is paid for from your balance, and the balance is -"), "{told}");
        assert_eq!(balance(&buyer).await, "-30.38");
        // An account in arrears takes no new on-demand subscription (nothing would be charged up
        // front to stop it), and renews nothing until it has paid.
        assert_problem(buyer.post("/v1/orders", json!({"plan_id": on_demand_plan, "period": "on_demand", "periods": 1})).await, StatusCode::CONFLICT, None).await;
        let refused = assert_problem(buyer.post(&format!("{path}/renew"), json!({"periods": 1})).await, StatusCode::CONFLICT, None).await;
        assert!(refused["detail"].as_str().unwrap().contains("arrears"), "{refused}");
        let entries = buyer.json("/v1/ledger").await;
        assert_eq!(entries["items"][0]["kind"], "usage", "{entries}");
        assert_eq!(entries["items"][0]["amount"]["amount"], "-105.78");
        assert!(entries["items"][0]["memo"].as_str().unwrap().starts_with("Acme API: "), "the line names the product: {entries}");

        // Grace runs out: frozen at the seller. A top-up that pays the arrears unfreezes it.
        app.advance(16 * 86_400).await;
        buyer.wait_for(&path, |v| v["state"] == "frozen").await;
        app.top_up(&op, &buyer, "20.00").await;
        assert_eq!(buyer.json(&path).await["state"], "frozen", "-10.38 is still in arrears");
        app.top_up(&op, &buyer, "50.00").await;
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert!(i["expires_at"].as_str().unwrap().starts_with("9999"), "{i}");
        buyer.wait_for(&path, |v| v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.unfrozen")).await;
        assert_eq!(stub.heard().iter().filter(|h| h.starts_with("status")).collect::<Vec<_>>(), ["status Freeze", "status Unfreeze"]);

        // A package: its quota is paid by the month, and use past it is refused.
        let order = buyer.expect_post("/v1/orders", json!({"plan_id": package_plan, "period": "month", "periods": 1}), StatusCode::CREATED).await;
        let pack = order["instance_id"].as_str().unwrap().to_owned();
        buyer.wait_for(&format!("/v1/instances/{pack}"), |v| v["state"] == "active").await;
        let now = app.state.now();
        let (s, e) = (now - Duration::minutes(4), now - Duration::minutes(1));
        let answer = seller.expect_post("/v1/metering/usage", json!({"records": [
            record("p-1", &pack, "api_calls", json!(40), s, e),
            record("p-2", &pack, "api_calls", json!(20), s, e),
            record("p-3", &pack, "api_calls", json!(10), s, e),
        ]}), StatusCode::OK).await;
        assert_eq!(statuses(&answer), ["accepted", "rejected:over_quota", "accepted"], "{answer}");
        let usage = buyer.json(&format!("/v1/instances/{pack}/usage")).await;
        assert_eq!((usage["dimensions"][0]["included"].as_str(), usage["dimensions"][0]["quota_left"].as_str()), (Some("50"), Some("0")), "{usage}");
        // The list of subscriptions says how each is paid for, and what is left of a quota.
        let listed = buyer.json("/v1/instances").await;
        let item = |id: &str| listed["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
        assert_eq!((item(&pack)["mode"].as_str(), item(&instance)["mode"].as_str()), (Some("package"), Some("on_demand")), "{listed}");
        assert_eq!(item(&pack)["quotas"], json!([{"dimension": "api_calls", "unit": "1,000 calls", "included": "50", "left": "0"}]), "{listed}");
        assert_eq!(item(&instance)["quotas"], json!([]), "{listed}");
        let page = buyer.get("/instances").await.text().await.unwrap();
        assert!(page.contains("pay as you go") && page.contains("0 of 50 left (unit: 1,000 calls)"), "{page}");
        let before = balance(&buyer).await;
        app.advance(3600).await;
        buyer.wait_for(&format!("/v1/instances/{pack}/usage"), |u| u["dimensions"][0]["rated"] == "50").await;
        assert_eq!(balance(&buyer).await, before, "use within the quota costs nothing more");
        app.assert_ledger_balances().await;
        // The ledger check notices a usage charge its entry does not match.
        let store = &app.state.store;
        sqlx::query("UPDATE usage_charges SET amount_minor = amount_minor + 1 WHERE amount_minor > 0")
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.usage_mismatches().await.unwrap().len(), 2, "both charged hours are caught");
        app.cleanup().await;
    }

    async fn a_runaway_meter_stops_at_the_period_cap_and_rating_goes_on(backend) {
        let app = TestApp::spawn(backend).await;
        // The cap is the running month's: the hour walked below stays in one.
        app.to_early_in_next_month().await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Bytes", &endpoint, "1");
        body["plans"] = json!([{"name": "Free tier", "currency": "CNY", "dimensions": [{"key": "bytes", "unit": "byte", "price": "0"}]}]);
        body["signing_key"] = json!(KEY);
        let (_, plan, _) = app.listed_product_with(&op, &seller, body).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let order = buyer.expect_post("/v1/orders", json!({"plan_id": plan, "period": "on_demand", "periods": 1}), StatusCode::CREATED).await;
        let instance = order["instance_id"].as_str().unwrap().to_owned();
        buyer.wait_for(&format!("/v1/instances/{instance}"), |v| v["state"] == "active").await;
        // A thousand records of the most one may state, and one more: 10^12 units and a byte.
        let now = app.state.now();
        let (start, end) = (now - Duration::minutes(5), now - Duration::minutes(1));
        let mut records: Vec<Value> = (0..1000).map(|i| record(&format!("big-{i}"), &instance, "bytes", json!("1000000000"), start, end)).collect();
        let answer = seller.expect_post("/v1/metering/usage", json!({"records": records}), StatusCode::OK).await;
        assert_eq!(answer["accepted"], 1000);
        records = vec![record("one-more", &instance, "bytes", json!("1"), start, end)];
        seller.expect_post("/v1/metering/usage", json!({"records": records}), StatusCode::OK).await;
        app.advance(3600).await;
        let usage = buyer.wait_for(&format!("/v1/instances/{instance}/usage"), |u| u["dimensions"][0]["pending"] == "0").await;
        assert_eq!(usage["dimensions"][0]["rated"], "1000000000000", "the period's total stops at its cap: {usage}");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn plans_with_bad_dimensions_are_refused_with_their_field(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme API", "https://api.acme.test/souk", "1");
        for (dimensions, monthly, field) in [
            (json!([{"key": "API calls", "unit": "call", "price": "1"}]), None, "plans[0].dimensions[0].key"),
            (json!([{"key": "calls", "unit": "call", "price": "0.001"}]), None, "plans[0].dimensions[0].price"),
            (json!([{"key": "calls", "unit": "call", "price": "1", "included": "10"}]), None, "plans[0].dimensions[0].included"),
            (json!([{"key": "calls", "unit": "call", "price": "1", "tiers": [{"from": "0", "price": "1"}]}]), Some("10"), "plans[0].dimensions[0].tiers[0].from"),
            (json!([{"key": "calls", "unit": "c", "price": "1"}, {"key": "calls", "unit": "c", "price": "2"}]), None, "plans[0].dimensions[1].key"),
        ] {
            body["plans"] = json!([{"name": "P", "currency": "CNY", "monthly_price": monthly, "dimensions": dimensions}]);
            assert_problem(seller.post("/v1/seller/products", body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, Some(field)).await;
        }
        body["plans"] = json!([{"name": "P", "currency": "CNY", "trial_days": 7, "dimensions": [{"key": "calls", "unit": "c", "price": "1"}]}]);
        assert_problem(seller.post("/v1/seller/products", body).await, StatusCode::UNPROCESSABLE_ENTITY, Some("plans[0].trial_days")).await;
        app.cleanup().await;
    }
}
