//! Unsubscribing through the API: renewals given back in full, the running period prorated after
//! the full-refund window, everything within it, and the seller told each time.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

on_both_databases! {
    async fn renewals_go_back_in_full_and_the_running_month_is_prorated(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (seller, _product, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "200.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        let (ordered_at, expiry) = (at(&order["created_at"]), at(&i["expires_at"]));
        let seller_id = i["seller_instance_id"].as_str().unwrap().to_owned();
        let renewal = buyer.expect_post(&format!("{path}/renew"), json!({"periods": 2}), StatusCode::CREATED).await;
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "110.00");
        // The seller hears of the renewal before it is given back (a call tells the expiry the
        // subscription has when it goes out, so a later give-back would make it tell the old one).
        buyer
            .wait_for(&path, |v| v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.refreshed"))
            .await;

        // Only the renewal has not begun: giving back renewals returns it whole.
        let quote = buyer.json(&format!("{path}/refund-quote?scope=renewals")).await;
        assert_eq!(quote["total"]["amount"], "60.00");
        assert_eq!(quote["orders"].as_array().unwrap().len(), 1);
        assert_eq!(at(&quote["new_expiry"]), expiry);
        let back = buyer.expect_post(&format!("{path}/unsubscribe"), json!({"scope": "renewals"}), StatusCode::OK).await;
        assert_eq!(back["refunded"]["amount"], "60.00");
        assert_eq!(back["orders"][0]["id"], renewal["id"]);
        assert_eq!(back["orders"][0]["state"], "unsubscribed");
        assert_eq!(back["orders"][0]["refunded"]["amount"], "60.00");
        assert_eq!(back["instance"]["state"], "active");
        assert_eq!(at(&back["instance"]["expires_at"]), expiry);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "170.00");
        // The seller's sales page shows the order given back and what was refunded.
        let sales = seller.get("/seller/sales").await.text().await.unwrap();
        assert!(sales.contains("unsubscribed") && sales.contains(r#"60.00 CNY</td><td class="num">60.00 CNY</td></tr>"#), "{sales}");
        // Nothing more to give back, and nothing changes.
        assert_problem(
            buyer.post(&format!("{path}/unsubscribe"), json!({"scope": "renewals"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("scope"),
        )
        .await;
        assert_problem(
            buyer.post(&format!("{path}/unsubscribe"), json!({"scope": "some"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("scope"),
        )
        .await;

        // Ten days in, past the five-day window: the unused share of the month goes back.
        app.advance(10 * 86_400).await;
        let now = ordered_at + Duration::days(10);
        let unused = (expiry - now).num_milliseconds() as i128;
        let whole = (expiry - ordered_at).num_milliseconds() as i128;
        let expected = 3000 * unused / whole;
        let expected = format!("{}.{:02}", expected / 100, expected % 100);
        let quote = buyer.json(&format!("{path}/refund-quote")).await;
        assert_eq!(quote["total"]["amount"], expected.as_str());
        assert!(buyer.json(&path).await["access"].is_object(), "running, it can be reached");
        let done = buyer.expect_post(&format!("{path}/unsubscribe"), json!({}), StatusCode::OK).await;
        assert_eq!(done["refunded"]["amount"], expected.as_str());
        assert_eq!(done["instance"]["state"], "released");
        let refund = &buyer.json("/v1/ledger").await["items"][0];
        assert!(refund["memo"].as_str().unwrap().starts_with("refund of Stub (order "), "the line names the product: {refund}");
        assert_eq!(done["orders"][0]["id"], order["id"]);
        assert_eq!(done["orders"][0]["state"], "unsubscribed");
        let balance = 170 * 100 + (3000 * unused / whole);
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            format!("{}.{:02}", balance / 100, balance % 100).as_str()
        );
        // Released, it shows no way in and no dates ahead, only when it ended.
        assert!(done["instance"]["access"].is_null(), "{done}");
        let page = buyer.get(&format!("/instances/{}", done["instance"]["id"].as_str().unwrap())).await.text().await.unwrap();
        assert!(page.contains("<dt>Ended</dt>") && !page.contains("How to reach it") && !page.contains("Data kept until"), "{page}");
        // The buyer is told of each, with what came back.
        let told = buyer
            .wait_for("/v1/notifications", |v| v["notifications"].to_string().contains("Unsubscribed: "))
            .await;
        let titles: Vec<&str> = told["notifications"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
        assert!(titles.iter().any(|t| t.starts_with("Renewals given back: ")), "{titles:?}");
        let unsubscribed = told["notifications"].as_array().unwrap().iter().find(|n| n["title"].as_str().unwrap().starts_with("Unsubscribed: ")).unwrap();
        assert_eq!(unsubscribed["body"], format!("Unsubscribed from Stub: {expected} CNY back, released at the seller. The refund is on your balance."), "{unsubscribed}");
        assert_eq!(unsubscribed["topic"], "order");
        // Released: a second unsubscribe is refused and gives nothing.
        assert_problem(
            buyer.post(&format!("{path}/unsubscribe"), json!({})).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        buyer
            .wait_for(&path, |v| {
                v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.released")
            })
            .await;
        let expire_time = expiry.format("%Y%m%d%H%M%S");
        assert_eq!(
            stub.heard(),
            [
                format!("refresh Renewal {}", (expiry.checked_add_months(chrono::Months::new(2)).unwrap()).format("%Y%m%d%H%M%S")),
                format!("refresh UnsubscribeRenewalPeriod {expire_time}"),
                format!("release {seller_id}"),
            ]
        );
        let listed = buyer.json("/v1/orders?state=unsubscribed").await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 2);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn within_the_window_everything_goes_back_and_only_the_owner_may_unsubscribe(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, _product, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let other = app.verified_buyer(&op, "other@souk.test").await;
        app.top_up(&op, &buyer, "30.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert_problem(other.post(&format!("{path}/unsubscribe"), json!({})).await, StatusCode::NOT_FOUND, None).await;
        assert_problem(other.get(&format!("{path}/refund-quote")).await, StatusCode::NOT_FOUND, None).await;
        app.advance(4 * 86_400).await;
        // Five at once: one gives the money back, the others find the instance released.
        let buyer = std::sync::Arc::new(buyer);
        let tries: Vec<_> = (0..5)
            .map(|_| {
                let (buyer, url) = (buyer.clone(), format!("{path}/unsubscribe"));
                tokio::spawn(async move { buyer.post(&url, json!({})).await })
            })
            .collect();
        let mut done = Vec::new();
        for res in tries {
            let res = res.await.unwrap();
            match res.status() {
                StatusCode::OK => done.push(res.json::<Value>().await.unwrap()),
                StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(done.len(), 1);
        assert_eq!(done[0]["refunded"]["amount"], "30.00");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "30.00");
        let entries = buyer.json("/v1/ledger").await;
        assert_eq!(entries["items"][0]["kind"], "refund");
        assert_eq!(entries["items"][0]["order_id"], order["id"]);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
