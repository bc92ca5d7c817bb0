//! Changing plan within a product through the API: the time left re-priced at the new plan, the
//! difference charged or given back, the seller told with `upgradeInstance`, and what a later
//! unsubscribe returns.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn cny(minor: i64) -> String {
    format!(
        "{}{}.{:02}",
        if minor < 0 { "-" } else { "" },
        minor.abs() / 100,
        minor.abs() % 100
    )
}

/// `price_minor` x `left / total`, rounded down.
fn share(price_minor: i64, left: chrono::Duration, total: chrono::Duration) -> i64 {
    (i128::from(price_minor) * i128::from(left.num_milliseconds())
        / i128::from(total.num_milliseconds())) as i64
}

/// A listed product with three monthly plans (Lite 15.50, Team 31.00, Business 62.00) calling
/// `endpoint`; returns the seller and the plan ids by name.
async fn three_plans(app: &TestApp, op: &User, endpoint: &str) -> (User, Value, [String; 3]) {
    let seller = app.merchant(op, "seller@acme.test").await;
    let mut body = product_body("Acme Notes", endpoint, "31.00");
    body["signing_key"] = json!(KEY);
    body["plans"] = json!([
        {"name": "Lite", "currency": "CNY", "monthly_price": "15.50"},
        {"name": "Team", "currency": "CNY", "monthly_price": "31.00", "trial_days": 7},
        {"name": "Business", "currency": "CNY", "monthly_price": "62.00"},
        {"name": "Yearly only", "currency": "CNY", "yearly_price": "600.00"},
        {"name": "Dollars", "currency": "USD", "monthly_price": "5.00"},
        {"name": "Metered", "currency": "CNY", "monthly_price": "40.00", "dimensions": [{"key": "calls", "unit": "call", "price": "0.01", "included": "100"}]},
    ]);
    let (product, _, _) = app.listed_product_with(op, &seller, body).await;
    let listed = app.public_json(&format!("/v1/products/{product}")).await;
    let id = |name: &str| {
        listed["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let plans = [id("Lite"), id("Team"), id("Business")];
    (
        seller,
        json!({"id": product, "yearly": id("Yearly only"), "dollars": id("Dollars"), "metered": id("Metered")}),
        plans,
    )
}

/// The value of the first `name` field after `marker` in `html`.
fn field_after(html: &str, marker: &str, name: &str) -> String {
    let from = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let tag = format!("name=\"{name}\" value=\"");
    let at = from + html[from..].find(&tag).unwrap() + tag.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

on_both_databases! {
    async fn the_time_left_is_repriced_and_changing_back_at_once_costs_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (seller, _product, [_lite, team, business]) = three_plans(&app, &op, &endpoint).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;
        let order: Value = buyer.order(&team, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        let seller_id = i["seller_instance_id"].as_str().unwrap().to_owned();
        let (bought_at, expiry) = (at(&order["created_at"]), at(&i["expires_at"]));

        // Ten days in, the time left moves to Business: twice the price, so the difference is
        // what the time left costs at Team.
        app.advance(10 * 86_400).await;
        let now = bought_at + chrono::Duration::days(10);
        let (left, total) = (expiry - now, expiry - bought_at);
        let diff = share(6200, left, total) - share(3100, left, total);
        let quote = buyer.json(&format!("{path}/plan-change?plan_id={business}")).await;
        assert_eq!(quote["direction"], "upgrade");
        assert_eq!(quote["difference"]["amount"], cny(diff));
        assert_eq!(quote["from_plan"], "Team");
        assert_eq!(quote["to_plan"], "Business");
        assert_eq!(at(&quote["until"]), expiry);
        let keyed = || {
            buyer
                .client
                .post(format!("{}{path}/plan-change", buyer.base))
                .header("Idempotency-Key", "up-1")
                .json(&json!({"plan_id": business}))
                .send()
        };
        let up = keyed().await.unwrap();
        assert_eq!(up.status(), StatusCode::CREATED);
        let up: Value = up.json().await.unwrap();
        assert_eq!(up["kind"], "change");
        assert_eq!(up["plan_id"], business.as_str());
        assert_eq!(up["amount"]["amount"], cny(diff));
        // A retry with the same key answers the same order and charges once.
        let again = keyed().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.json::<Value>().await.unwrap()["id"], up["id"]);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], cny(46900 - diff));
        let i = buyer.json(&path).await;
        assert_eq!(i["plan_id"], business.as_str());
        assert_eq!(at(&i["expires_at"]), expiry, "a plan change never moves the expiry");

        // Straight back to Team: exactly the difference comes back.
        let down = buyer.expect_post(&format!("{path}/plan-change"), json!({"plan_id": team}), StatusCode::CREATED).await;
        assert_eq!(down["amount"]["amount"], cny(-diff));
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "469.00");
        let changes = buyer.json("/v1/orders?kind=change").await;
        assert_eq!(changes["items"].as_array().unwrap().len(), 2);
        // The buyer is told of each change, by product and plan.
        let told = buyer
            .wait_for("/v1/notifications", |v| {
                v["notifications"].as_array().unwrap().iter().filter(|n| n["title"] == "Plan changed: Acme Notes").count() == 2
            })
            .await;
        assert!(told.to_string().contains("moved to the Business plan for the time left"), "{told}");

        // The seller hears of each change under its order, and the order query names the plan.
        buyer
            .wait_for(&path, |v| {
                v["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "seller.upgraded").count() == 2
            })
            .await;
        assert_eq!(
            stub.heard(),
            [
                format!("upgrade {seller_id} {}", up["id"].as_str().unwrap()),
                format!("upgrade {seller_id} {}", down["id"].as_str().unwrap()),
            ]
        );
        let sold = seller
            .json(&format!("/api/mkp-openapi-public/global/v1/order/query?orderId={}", up["id"].as_str().unwrap()))
            .await;
        assert_eq!(sold["orderInfo"]["orderType"], "CHANGE");
        assert_eq!(sold["orderInfo"]["orderLineList"][0]["productInfo"][0]["skuCode"], business.as_str());

        // Up again, then out ten days later: the month's unused share at Team, plus what the
        // changes are still worth (up, down, up: Business's price less Team's for the days left),
        // so the days left go back at Business's price.
        buyer.expect_post(&format!("{path}/plan-change"), json!({"plan_id": business}), StatusCode::CREATED).await;
        app.advance(10 * 86_400).await;
        let later = now + chrono::Duration::days(10);
        let left2 = expiry - later;
        let still = share(6200, left2, total) - share(3100, left2, total);
        let expected = share(3100, left2, total) + still - still + still;
        assert_eq!(expected, share(6200, left2, total));
        let refund = buyer.json(&format!("{path}/refund-quote")).await;
        assert_eq!(refund["total"]["amount"], cny(expected));
        let done = buyer.expect_post(&format!("{path}/unsubscribe"), json!({}), StatusCode::OK).await;
        assert_eq!(done["refunded"]["amount"], cny(expected));
        assert_eq!(done["orders"].as_array().unwrap().len(), 4);
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            cny(46900 - diff + expected)
        );
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn what_cannot_change_plan_is_told_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, product, [lite, team, business]) = three_plans(&app, &op, &endpoint).await;
        let other_product = listed_by(&app, &op, &app.merchant(&op, "other@acme.test").await, &endpoint, "5.00").await.1;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let stranger = app.verified_buyer(&op, "stranger@souk.test").await;
        app.top_up(&op, &buyer, "35.00").await;
        let order: Value = buyer.order(&team, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        buyer.wait_for(&path, |v| v["state"] == "active").await;
        let change = |plan: &str| json!({"plan_id": plan});
        for (plan, why) in [
            (team.as_str(), "the same plan"),
            (other_product.as_str(), "another product's plan"),
            ("pln_nope", "an unknown plan"),
            (product["yearly"].as_str().unwrap(), "a plan not sold by the month"),
            (product["dollars"].as_str().unwrap(), "a plan in another currency"),
            (product["metered"].as_str().unwrap(), "a plan that meters use"),
        ] {
            let p = assert_problem(buyer.post(&format!("{path}/plan-change"), change(plan)).await, StatusCode::UNPROCESSABLE_ENTITY, Some("plan_id")).await;
            assert!(p["detail"].is_string(), "{why}: {p}");
        }
        assert_problem(buyer.post(&format!("{path}/plan-change"), json!({})).await, StatusCode::UNPROCESSABLE_ENTITY, None).await;
        assert_problem(stranger.post(&format!("{path}/plan-change"), change(&business)).await, StatusCode::NOT_FOUND, None).await;
        assert_problem(stranger.get(&format!("{path}/plan-change?plan_id={business}")).await, StatusCode::NOT_FOUND, None).await;
        // 4.00 left: the upgrade's difference (most of 31.00) is short.
        assert_problem(buyer.post(&format!("{path}/plan-change"), change(&business)).await, StatusCode::PAYMENT_REQUIRED, None).await;
        assert_eq!(buyer.json(&path).await["plan_id"], team.as_str());
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "4.00");
        // A downgrade needs no money: half the month comes back at once.
        let down = buyer.expect_post(&format!("{path}/plan-change"), change(&lite), StatusCode::CREATED).await;
        assert_eq!(down["amount"]["amount"], "-15.50");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "19.50");
        // A renewal bought after a change is Lite's and can go back alone; once a change has
        // re-priced it, it goes back only with everything.
        buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "4.00");
        assert_eq!(buyer.json(&format!("{path}/refund-quote?scope=renewals")).await["total"]["amount"], "15.50");
        app.top_up(&op, &buyer, "100.00").await;
        let up = buyer.expect_post(&format!("{path}/plan-change"), change(&team), StatusCode::CREATED).await;
        assert_eq!(up["amount"]["amount"], "31.00", "two months of the difference");
        // Both changes reach the seller; its calls go out in the background.
        let upgrades = |h: &[String]| h.iter().filter(|h| h.starts_with("upgrade")).count();
        stub.wait_until_heard(|h| upgrades(h) == 2).await;
        assert_problem(buyer.post(&format!("{path}/unsubscribe"), json!({"scope": "renewals"})).await, StatusCode::CONFLICT, None).await;

        // A trial converts instead; a released instance changes nothing.
        let trial = buyer.expect_post("/v1/trials", json!({"plan_id": team}), StatusCode::CREATED).await;
        let trial_path = format!("/v1/instances/{}", trial["instance_id"].as_str().unwrap());
        buyer.wait_for(&trial_path, |v| v["state"] == "active").await;
        assert_problem(buyer.post(&format!("{trial_path}/plan-change"), change(&business)).await, StatusCode::CONFLICT, None).await;
        buyer.expect_post(&format!("{path}/unsubscribe"), json!({}), StatusCode::OK).await;
        assert_problem(buyer.post(&format!("{path}/plan-change"), change(&team)).await, StatusCode::CONFLICT, None).await;
        assert_eq!(upgrades(&stub.heard()), 2);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn the_subscription_page_offers_the_other_plans_and_moves_to_one(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, _product, [lite, team, business]) = three_plans(&app, &op, &endpoint).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "35.00").await;
        let order: Value = buyer.order(&team, 1, None).await.json().await.unwrap();
        let id = order["instance_id"].as_str().unwrap().to_owned();
        buyer.wait_for(&format!("/v1/instances/{id}"), |v| v["state"] == "active").await;

        let html = buyer.get(&format!("/instances/{id}")).await.text().await.unwrap();
        assert!(html.contains("<dt>Plan</dt><dd>Team</dd>"), "{html}");
        assert!(html.contains("Upgrade to Business") && html.contains("62.00 CNY a month"), "{html}");
        assert!(html.contains("Downgrade to Lite") && html.contains("get 15.50 CNY back"), "{html}");
        assert!(!html.contains("Upgrade to Yearly only") && !html.contains("Downgrade to Yearly only"));
        let csrf = field_after(&html, "id=\"plan-change\"", "csrf");
        let key = field_after(&html, "id=\"plan-change\"", "key");
        let post = |plan: &str| {
            buyer
                .client
                .post(format!("{}/instances/{id}/plan-change", app.base))
                .form(&[("csrf", csrf.as_str()), ("key", key.as_str()), ("plan_id", plan)])
                .send()
        };
        // The upgrade is more than the 4.00 left: a readable refusal, and nothing moves.
        let res = post(&business).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
        assert!(res.text().await.unwrap().contains("balance"));
        assert_eq!(buyer.json(&format!("/v1/instances/{id}")).await["plan_name"], "Team");

        let res = post(&lite).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("The plan changed") && html.contains("<dt>Plan</dt><dd>Lite</dd>"), "{html}");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "19.50");
        // The same form sent again (a double click, a reload) changes nothing more.
        assert_eq!(post(&lite).await.unwrap().status(), StatusCode::OK);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "19.50");
        assert_eq!(buyer.json("/v1/orders?kind=change").await["items"].as_array().unwrap().len(), 1);
        // The orders page lists it under its own kind, named for what it was.
        let orders = buyer.get("/orders?kind=change").await.text().await.unwrap();
        assert!(orders.contains(r#"<option value="change" selected>plan change</option>"#), "{orders}");
        assert!(orders.contains("Acme Notes: downgrade to a plan at 15.50 CNY a month for the time left") && orders.contains("-15.50 CNY"), "{orders}");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn concurrent_changes_move_the_plan_and_the_money_once(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, _product, [_lite, team, business]) = three_plans(&app, &op, &endpoint).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let order: Value = buyer.order(&team, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        buyer.wait_for(&path, |v| v["state"] == "active").await;
        // Ten upgrades at once, each with its own key: one moves the plan, the others find it
        // moved (or lose the race and are told), and the difference is charged once.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (client, url, plan) = (buyer.client.clone(), format!("{}{path}/plan-change", buyer.base), business.clone());
                tokio::spawn(async move {
                    client.post(url).header("Idempotency-Key", format!("race-{i}")).json(&json!({"plan_id": plan})).send().await.unwrap().status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT].contains(s)), "{statuses:?}");
        assert_eq!(buyer.json("/v1/orders?kind=change").await["items"].as_array().unwrap().len(), 1);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "38.00", "100 - 31 - 31 once");
        buyer
            .wait_for(&path, |v| v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.upgraded"))
            .await;
        assert_eq!(stub.heard().iter().filter(|h| h.starts_with("upgrade")).count(), 1);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
