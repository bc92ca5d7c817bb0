//! What every page and answer carries, whatever the browser: security headers, no caching of what
//! belongs to one person, and a page (not a problem document) for a person at a missing path.

use reqwest::StatusCode;
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn pages_and_answers_carry_the_security_headers(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let home = TestApp::client().get(format!("{}/", app.base)).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        let h = home.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
        let me = op.get("/v1/me").await;
        assert_eq!(me.headers()["cache-control"], "no-store");
        let css = TestApp::client().get(format!("{}/static/souk.css", app.base)).send().await.unwrap();
        assert!(css.headers()["cache-control"].to_str().unwrap().starts_with("public"));

        let page = TestApp::client().get(format!("{}/no-such-page", app.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(page.text().await.unwrap().contains("This page does not exist"));
        let api = TestApp::client().get(format!("{}/v1/no-such-thing", app.base)).send().await.unwrap();
        assert_eq!(api.headers()["content-type"], "application/problem+json");

        // After log-in, only a plain path of this site is followed.
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = c
            .post(format!("{}/login", app.base))
            .header("cookie", "souk_csrf=t")
            .form(&[("email", "operator@souk.test"), ("password", "operator password"), ("csrf", "t"), ("next", "/\t/evil.example")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/?notice=logged-in");

        // Someone who is not a merchant is told so before filling in a product form.
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let form = buyer.get("/seller/products/new").await;
        assert_eq!(form.status(), StatusCode::FORBIDDEN);
        assert!(form.text().await.unwrap().contains("apply to become a merchant first"));
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn an_error_page_leads_back_to_the_page_it_came_from(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        // A refused action on a page: the error says why and leads back to that page.
        let html = buyer.get("/access-keys").await.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &html[at..at + html[at..].find('"').unwrap()];
        let refused = |referer: &'static str| {
            buyer
                .client
                .post(format!("{}/access-keys/users/usr_nobody/keys", app.base))
                .header("referer", referer)
                .form(&[("csrf", csrf)])
                .send()
        };
        let page = refused("http://127.0.0.1/access-keys?x=1").await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let text = page.text().await.unwrap();
        assert!(text.contains(r#"<a class="button" href="/access-keys?x=1">Go back</a>"#), "{text}");
        // Only a path on souk: a claimed referrer elsewhere leads to that path here, and one that
        // would leave souk leads nowhere.
        let text = refused("https://evil.example//evil.example/x").await.unwrap().text().await.unwrap();
        assert!(!text.contains("Go back"), "{text}");
        let text = refused("https://evil.example/orders").await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"href="/orders">Go back"#), "{text}");
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn the_product_form_names_every_plan_price_at_fault_at_once(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let html = seller.get("/seller/products/new").await.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = html[at..at + html[at..].find('"').unwrap()].to_owned();
        let res = seller
            .client
            .post(format!("{}/seller/products", app.base))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Acme Tiny"),
                ("summary", "Prices too small to charge"),
                ("category", "security"),
                ("support_contact", "help@acme.example"),
                ("endpoint_url", "https://acme.example/souk"),
                ("plans[0].name", "Monthly"),
                ("plans[0].monthly_price", "0.004"),
                ("plans[1].name", "Once"),
                ("plans[1].one_time_price", "0.001"),
                ("plans[2].name", "Good"),
                ("plans[2].monthly_price", "10.00"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(page.contains("0.004 CNY charges nothing") && page.contains("0.001 CNY charges nothing"), "{page}");
        assert_eq!(seller.json("/v1/seller/products").await.as_array().map(Vec::len), Some(0), "nothing was made");
        app.cleanup().await;
    }
}
