//! One-time purchases through the API: bought once, never expiring, never renewed, and nothing
//! refunded once provisioned.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn a_one_time_purchase_runs_for_good_and_refunds_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Vault", &endpoint, "1");
        body["plans"][0] = json!({"name": "Perpetual", "currency": "CNY", "one_time_price": "499.00"});
        body["signing_key"] = json!(KEY);
        let (product, plan, _) = app.listed_product_with(&op, &seller, body).await;
        assert_eq!(app.public_json(&format!("/v1/products/{product}")).await["plans"][0]["one_time_price"], "499");
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "1000.00").await;

        let buy = |period: &str, periods: u32| json!({"plan_id": plan, "period": period, "periods": periods});
        assert_problem(buyer.post("/v1/orders", buy("month", 1)).await, StatusCode::UNPROCESSABLE_ENTITY, Some("period")).await;
        assert_problem(buyer.post("/v1/orders", buy("once", 2)).await, StatusCode::UNPROCESSABLE_ENTITY, Some("periods")).await;
        let order = buyer.expect_post("/v1/orders", buy("once", 1), StatusCode::CREATED).await;
        assert_eq!((order["period"].as_str(), order["amount"]["amount"].as_str()), (Some("once"), Some("499.00")));
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert!(i["expires_at"].as_str().unwrap().starts_with("9999-12-31"), "{i}");
        // Every date in the answer is one a client can parse (no year 10000).
        for field in ["grace_ends_at", "retention_ends_at"] {
            assert!(i[field].as_str().unwrap().starts_with("9999-12-31"), "{field}: {i}");
        }

        // Years on, it still runs, with nothing to renew and no reminder.
        app.advance(800 * 86_400).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let i = buyer.json(&path).await;
        assert_eq!(i["state"], "active");
        assert!(i["timeline"].as_array().unwrap().iter().all(|e| e["kind"] != "instance.expiring"));
        assert_problem(buyer.post(&format!("{path}/renew"), json!({"periods": 1})).await, StatusCode::CONFLICT, None).await;

        // Unsubscribing releases it and gives nothing back.
        assert_eq!(buyer.json(&format!("{path}/refund-quote")).await["total"]["amount"], "0.00");
        let done: Value = buyer.expect_post(&format!("{path}/unsubscribe"), json!({}), StatusCode::OK).await;
        assert_eq!((done["refunded"]["amount"].as_str(), done["instance"]["state"].as_str()), (Some("0.00"), Some("released")));
        buyer.wait_for(&path, |v| v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.released")).await;
        assert!(stub.heard().iter().any(|h| h.starts_with("release")));
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "501.00");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn the_buy_page_offers_a_plan_as_it_is_sold_and_buys_nothing_unasked(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Vault", &endpoint, "1");
        body["plans"][0] = json!({"name": "Perpetual", "currency": "CNY", "one_time_price": "499.00"});
        body["signing_key"] = json!(KEY);
        let (product, plan, _) = app.listed_product_with(&op, &seller, body).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "1000.00").await;

        // Opened without a period, the page offers the plan the way it is sold.
        let page = buyer.get(&format!("/products/{product}/buy?plan={plan}")).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("once for good"), "{html}");
        // Only the ways the plan is sold are offered.
        assert!(html.contains(r#"<option value="once" selected>once, for good</option>"#), "{html}");
        assert!(!html.contains(r#"<option value="month""#) && !html.contains(r#"<option value="on_demand""#), "{html}");
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = html[at..at + html[at..].find('"').unwrap()].to_owned();

        // A purchase that leaves out its period or count buys nothing and says what is missing.
        let post = |fields: Vec<(&'static str, String)>| {
            let (client, url) = (buyer.client.clone(), format!("{}/products/{product}/buy", app.base));
            async move { client.post(url).form(&fields).send().await.unwrap() }
        };
        let res = post(vec![("csrf", csrf.clone()), ("period", "once".into()), ("periods", "1".into())]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("choose a plan"));
        let res = post(vec![("csrf", csrf.clone()), ("plan", plan.clone())]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("choose a period"));
        let res = post(vec![("csrf", csrf.clone()), ("plan", plan.clone()), ("period", "once".into())]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("say how many periods"));
        // Refusals name the way of selling in words.
        let res = post(vec![("csrf", csrf.clone()), ("plan", plan.clone()), ("period", "month".into()), ("periods", "1".into())]).await;
        assert!(res.text().await.unwrap().contains("this plan is not sold by the month"));
        let res = post(vec![("csrf", csrf.clone()), ("plan", plan.clone()), ("period", "once".into()), ("periods", "2".into())]).await;
        assert!(res.text().await.unwrap().contains("a one-time purchase is bought once"));
        assert_eq!(buyer.json("/v1/orders").await["items"].as_array().unwrap().len(), 0);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "1000.00");

        // All of it: bought once.
        let res = post(vec![("csrf", csrf.clone()), ("plan", plan.clone()), ("period", "once".into()), ("periods", "1".into()), ("key", "k1".into())]).await;
        assert!(res.status().is_success(), "{}", res.status());
        assert_eq!(buyer.json("/v1/orders").await["items"].as_array().unwrap().len(), 1);
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "501.00");
        app.cleanup().await;
    }
}
