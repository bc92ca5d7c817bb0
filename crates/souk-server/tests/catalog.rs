//! The catalog: search, filters and pages.

use souk_server::testing::*;

use serde_json::Value;
use souk_store::on_both_databases;

on_both_databases! {
    async fn catalog_searches_filters_and_pages(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        for (name, price) in [
            ("Alpha Notes", "10"),
            ("Beta Vault", "50"),
            ("Gamma Notes", "200"),
        ] {
            app.listed_product(&op, &seller, name, "https://acme.test/souk", price)
                .await;
            // Newest listings come first; a second apart keeps that order certain.
            app.advance(1).await;
        }
        let c = TestApp::client();
        let get = |q: &str| {
            let c = c.clone();
            let url = format!("{}/v1/products{q}", app.base);
            async move {
                c.get(url)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let names = |v: &Value| {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("").await["total"], 3);
        assert_eq!(
            names(&get("?q=notes").await),
            vec!["Gamma Notes", "Alpha Notes"]
        );
        assert_eq!(names(&get("?q=vault%20beta").await), vec!["Beta Vault"]);
        assert_eq!(
            names(&get("?min_price=20&max_price=60").await),
            vec!["Beta Vault"]
        );
        assert_eq!(
            names(&get("?category=collaboration&currency=CNY&max_price=10").await),
            vec!["Alpha Notes"]
        );
        assert_eq!(get("?category=security").await["total"], 0);
        assert_eq!(get("?type=saas").await["total"], 3);
        // An unknown kind of product is a mistake to name, not an empty result.
        let bad = reqwest::get(format!("{}/v1/products?type=toaster", app.base)).await.unwrap();
        assert_problem(bad, reqwest::StatusCode::UNPROCESSABLE_ENTITY, Some("type")).await;
        let page1 = get("?limit=2").await;
        assert_eq!(page1["items"].as_array().unwrap().len(), 2);
        let page2 = get(&format!(
            "?limit=2&cursor={}",
            page1["next_cursor"].as_str().unwrap()
        ))
        .await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert!(page2["next_cursor"].is_null());
        app.cleanup().await;
    }
}
