//! A year of a small marketplace on the test clock: monthly renewals, a trial paid for and then
//! left to lapse, credit drawn and paid back, renewals given back, a promotion, an unsubscribe
//! with a prorated refund, a plan upgraded, downgraded and then left, metered use on demand that
//! runs into arrears and is paid, and a package whose quota resets every month. Every balance is computed here independently of souk,
//! and the ledger check passes at the end.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

const DAY: i64 = 86_400;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Minor units as the API writes a CNY amount.
fn cny(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

async fn balance(u: &User) -> String {
    u.json("/v1/balance").await["balances"][0]["amount"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `minor` x `left / total`, truncated toward zero as souk prorates.
fn share(minor: i64, left: chrono::Duration, total: chrono::Duration) -> i64 {
    (i128::from(minor) * i128::from(left.num_milliseconds()) / i128::from(total.num_milliseconds()))
        as i64
}

fn instance_of(order: &Value) -> String {
    format!("/v1/instances/{}", order["instance_id"].as_str().unwrap())
}

on_both_databases! {
    async fn a_simulated_year_balances_to_the_cent(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let acme = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Notes", &endpoint, "30.00");
        body["plans"][0]["trial_days"] = json!(14);
        body["plans"].as_array_mut().unwrap().push(json!({"name": "Pro", "currency": "CNY", "monthly_price": "60.00"}));
        body["signing_key"] = json!(KEY);
        let (notes_product, notes, _) = app.listed_product_with(&op, &acme, body).await;
        let pro = app.public_json(&format!("/v1/products/{notes_product}")).await["plans"][1]["id"].as_str().unwrap().to_owned();
        let other = app.merchant(&op, "seller@bolt.test").await;
        let (bolt, backup) = listed_by(&app, &op, &other, &endpoint, "12.50").await;

        // Kite sells API calls on demand (0.40 per 1,000 calls) and as a package (20.00 a month
        // for 100, then 0.40 each).
        let kite = app.merchant(&op, "seller@kite.test").await;
        let mut body = product_body("Kite API", &endpoint, "1");
        body["plans"] = json!([
            {"name": "On demand", "currency": "CNY", "dimensions": [{"key": "calls", "unit": "1,000 calls", "price": "0.40"}]},
            {"name": "Starter", "currency": "CNY", "monthly_price": "20.00", "dimensions": [{"key": "calls", "unit": "1,000 calls", "price": "0.40", "included": "100"}]}
        ]);
        body["signing_key"] = json!(KEY);
        let (kite_api, on_demand, _) = app.listed_product_with(&op, &kite, body).await;
        let starter = app.public_json(&format!("/v1/products/{kite_api}")).await["plans"][1]["id"].as_str().unwrap().to_owned();
        let erin = app.verified_buyer(&op, "erin@souk.test").await;
        let frank = app.verified_buyer(&op, "frank@souk.test").await;
        app.top_up(&op, &erin, "100.00").await;
        app.top_up(&op, &frank, "400.00").await;
        let (mut e, mut f) = (10_000i64, 40_000i64);
        let erin_order = erin.expect_post("/v1/orders", json!({"plan_id": on_demand, "period": "on_demand", "periods": 1}), StatusCode::CREATED).await;
        let erin_path = instance_of(&erin_order);
        let frank_order = frank.expect_post("/v1/orders", json!({"plan_id": starter, "period": "month", "periods": 12}), StatusCode::CREATED).await;
        f -= 24_000;
        let frank_path = instance_of(&frank_order);
        erin.wait_for(&erin_path, |v| v["state"] == "active").await;
        frank.wait_for(&frank_path, |v| v["state"] == "active").await;
        let (mut erin_used, mut frank_used, mut arrears) = (0, 0, 0);

        let alice = app.verified_buyer(&op, "alice@souk.test").await;
        let bob = app.verified_buyer(&op, "bob@souk.test").await;
        let carol = app.verified_buyer(&op, "carol@souk.test").await;
        let dave = app.verified_buyer(&op, "dave@souk.test").await;
        app.top_up(&op, &alice, "500.00").await;
        app.top_up(&op, &bob, "100.00").await;
        app.top_up(&op, &dave, "100.00").await;
        let (mut a, mut b, mut c, mut d) = (50_000i64, 10_000i64, 0i64, 10_000i64);
        // Gina buys six months of Notes on the Team plan; she moves to Pro on day 40, back on
        // day 70, and leaves on day 100.
        let gina = app.verified_buyer(&op, "gina@souk.test").await;
        app.top_up(&op, &gina, "500.00").await;
        let gina_order: Value = gina.order(&notes, 6, Some("g-0")).await.json().await.unwrap();
        let mut g = 50_000i64 - 18_000;
        let gina_path = instance_of(&gina_order);
        let gina_bought = at(&gina_order["created_at"]);
        let gina_end = at(&gina.wait_for(&gina_path, |v| v["state"] == "active").await["expires_at"]);
        let whole = gina_end - gina_bought;
        let mut gina_changes = 0;

        // Day 0. Alice buys a month of Notes; Bob starts its trial; Carol, on 50.00 of credit,
        // buys two months of Backup; operations run 20% off Backup for 30 days.
        let alice_order: Value = alice.order(&notes, 1, Some("a-0")).await.json().await.unwrap();
        a -= 3000;
        let alice_path = instance_of(&alice_order);
        let trial = bob.expect_post("/v1/trials", json!({"plan_id": notes}), StatusCode::CREATED).await;
        let bob_path = instance_of(&trial);
        let limit = op.put(&format!("/v1/operator/accounts/{}/credit-limit", carol.id), json!({"limit": "50.00", "currency": "CNY"})).await;
        assert_eq!(limit.status(), StatusCode::OK);
        let carol_order: Value = carol.order(&backup, 2, Some("c-0")).await.json().await.unwrap();
        c -= 2500;
        let carol_path = instance_of(&carol_order);
        let now = app.state.now();
        op.expect_post("/v1/operator/promotions", json!({"product_id": bolt, "percent_off": 20, "starts_at": now, "ends_at": now + chrono::Duration::days(30)}), StatusCode::CREATED).await;
        // Dave buys Backup on promotion: 12.50 less 20%.
        let dave_first: Value = dave.order(&backup, 1, Some("d-0")).await.json().await.unwrap();
        assert_eq!(dave_first["discount"]["amount"], "2.50");
        d -= 1000;
        alice.wait_for(&alice_path, |v| v["state"] == "active").await;
        carol.wait_for(&carol_path, |v| v["state"] == "active").await;

        // Day 2: Carol renews a month into her credit, then gives that renewal back in full.
        app.advance(2 * DAY).await;
        carol.expect_post(&format!("{carol_path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        c -= 1000; // still on promotion
        assert_eq!(balance(&carol).await, cny(c));
        let back = carol.expect_post(&format!("{carol_path}/unsubscribe"), json!({"scope": "renewals"}), StatusCode::OK).await;
        assert_eq!(back["refunded"]["amount"], "10.00");
        c += 1000;

        // Day 10: Bob pays for his trial (a month from now).
        app.advance(8 * DAY).await;
        bob.wait_for(&bob_path, |v| v["state"] == "active").await;
        bob.expect_post(&format!("{bob_path}/convert"), json!({"period": "month", "periods": 1}), StatusCode::CREATED).await;
        b -= 3000;

        // Every 30 days Alice renews a month, eleven times (sometimes from grace); on day 40, after
        // the promotion, Dave buys another month at the list price; on day 70 Carol, lapsed into
        // grace, tops up and renews two months; on day 100 she unsubscribes (prorated).
        let mut carol_renewal: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        for month in 1..=11 {
            app.advance(30 * DAY).await;
            let day = 10 + 30 * month;
            alice.expect_post(&format!("{alice_path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
            a -= 3000;
            if day == 70 {
                carol.wait_for(&carol_path, |v| v["state"] == "grace").await;
                let before = carol.json(&carol_path).await;
                app.top_up(&op, &carol, "100.00").await;
                c += 10_000;
                let renewed = carol.expect_post(&format!("{carol_path}/renew"), json!({"periods": 2}), StatusCode::CREATED).await;
                assert_eq!(renewed["discount"]["amount"], "0.00");
                c -= 2500;
                let after = carol.wait_for(&carol_path, |v| v["state"] == "active").await;
                carol_renewal = Some((at(&before["expires_at"]), at(&after["expires_at"])));
            }
            if day == 100 {
                let (start, end) = carol_renewal.unwrap();
                let now = app.state.now();
                let refund = i128::from(2500) * (end - now).num_milliseconds() as i128
                    / (end - start).num_milliseconds() as i128;
                let done = carol.expect_post(&format!("{carol_path}/unsubscribe"), json!({}), StatusCode::OK).await;
                assert_eq!(done["refunded"]["amount"], cny(refund as i64).as_str());
                c += refund as i64;
            }
            if day == 40 || day == 70 {
                // The time left re-priced: six months at 60.00 against 30.00 a month.
                let now = app.state.now();
                let left = gina_end - now;
                let (to, diff) = if day == 40 {
                    (&pro, share(36_000, left, whole) - share(18_000, left, whole))
                } else {
                    (&notes, share(18_000, left, whole) - share(36_000, left, whole))
                };
                let changed = gina.expect_post(&format!("{gina_path}/plan-change"), json!({"plan_id": to}), StatusCode::CREATED).await;
                assert_eq!(changed["amount"]["amount"], cny(diff));
                g -= diff;
                gina_changes += 1;
            }
            if day == 100 {
                // Her six months' unused share, and what each change is still worth: Pro's price
                // less Team's for the days left, then Team's less Pro's. She is on Team again, so
                // the days left go back at Team's price.
                let now = app.state.now();
                let left = gina_end - now;
                let still = share(36_000, left, whole) - share(18_000, left, whole);
                let back = share(18_000, left, whole) + still - still;
                assert_eq!(gina_changes, 2);
                let done = gina.expect_post(&format!("{gina_path}/unsubscribe"), json!({}), StatusCode::OK).await;
                assert_eq!(done["refunded"]["amount"], cny(back));
                g += back;
            }
            if day == 40 {
                let second: Value = dave.order(&backup, 1, Some("d-1")).await.json().await.unwrap();
                assert_eq!(second["amount"]["amount"], "12.50");
                d -= 1250;
            }

            // Kite's meter reports the month: Erin used 150 (60.00); Frank 120 of his package's 100
            // (8.00 past the quota). Charged once the hour has ended.
            let now = app.state.now();
            let (start, end) = ((now - chrono::Duration::minutes(30)).to_rfc3339(), (now - chrono::Duration::minutes(1)).to_rfc3339());
            let report = |id: String, path: &str, qty: &str| json!({"record_id": id, "instance_id": path.rsplit('/').next().unwrap(),
                "dimension": "calls", "quantity": qty, "usage_start": start, "usage_end": end});
            let answer = kite.expect_post("/v1/metering/usage", json!({"records": [
                report(format!("e-{month}"), &erin_path, "150"), report(format!("f-{month}"), &frank_path, "120")]}), StatusCode::OK).await;
            assert_eq!(answer["accepted"], 2, "{answer}");
            app.advance(3600).await;
            erin_used += 150;
            frank_used += 120;
            erin.wait_for(&format!("{erin_path}/usage"), |u| u["days"].as_array().unwrap().iter().map(|d| d["quantity"].as_str().unwrap().parse::<i64>().unwrap()).sum::<i64>() == erin_used).await;
            frank.wait_for(&format!("{frank_path}/usage"), |u| u["days"].as_array().unwrap().iter().map(|d| d["quantity"].as_str().unwrap().parse::<i64>().unwrap()).sum::<i64>() == frank_used).await;
            e -= 6000;
            f -= 800;
            assert_eq!(balance(&frank).await, cny(f));
            if e < 0 {
                // Below zero with no credit: arrears. Erin's use keeps running in grace until she
                // pays; the top-up brings it back.
                erin.wait_for(&erin_path, |v| v["state"] == "grace").await;
                app.top_up(&op, &erin, "100.00").await;
                e += 10_000;
                arrears += 1;
                erin.wait_for(&erin_path, |v| v["state"] == "active").await;
            }
            assert_eq!(balance(&erin).await, cny(e));
        }

        // Where everything stands after the year.
        assert_eq!(balance(&alice).await, cny(a));
        assert_eq!(balance(&bob).await, cny(b));
        assert_eq!(balance(&carol).await, cny(c));
        assert_eq!(balance(&dave).await, cny(d));
        assert_eq!(balance(&erin).await, cny(e));
        assert_eq!(balance(&frank).await, cny(f));
        assert_eq!(balance(&gina).await, cny(g));
        assert_eq!((a, b, d), (14_000, 7_000, 7_750));
        // 100 + 6 top-ups of 100 - 11 x 60.00; 400 - 240 - 11 x 8.00.
        assert_eq!((e, f, arrears), (4_000, 7_200, 6));
        let timeline = erin.json(&erin_path).await["timeline"].clone();
        let kinds: Vec<&str> = timeline.as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "instance.arrears").count(), 6, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "instance.arrears_cleared").count(), 6, "{kinds:?}");
        alice.wait_for(&alice_path, |v| v["state"] == "active").await;
        bob.wait_for(&bob_path, |v| v["state"] == "released").await;
        carol.wait_for(&carol_path, |v| v["state"] == "released").await;
        dave.wait_for(&instance_of(&dave_first), |v| v["state"] == "released").await;
        gina.wait_for(&gina_path, |v| v["state"] == "released").await;
        let alice_orders = alice.json("/v1/orders?limit=100").await;
        assert_eq!(alice_orders["items"].as_array().unwrap().len(), 12);
        app.assert_ledger_balances().await;

        // The year's done jobs, all but the last 30 days', are forgotten; money, states,
        // timelines and the seller's view of its sales stay as they were.
        let forgotten = souk_server::workers::housekeeping::forget_done_jobs(&app.state).await.unwrap();
        assert!(forgotten > 0);
        assert_eq!(erin.json(&erin_path).await["timeline"], timeline);
        assert_eq!(balance(&erin).await, cny(e));
        assert_eq!(alice.json(&alice_path).await["state"], "active");
        assert_eq!(alice.json("/v1/orders?limit=100").await, alice_orders);
        assert_eq!(kite.get("/v1/seller/instances").await.status(), StatusCode::OK);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
