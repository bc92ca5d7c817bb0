//! Publishing and review: due dates in working days, change requests, rejections with reasons.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn review_is_due_in_three_working_days_and_change_requests_keep_the_listed_version(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let created: Value = seller
            .post(
                "/v1/seller/products",
                product_body("Notes", "https://acme.test/souk", "10"),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["state"], "draft");
        assert_eq!(created["current"]["state"], "draft");
        assert_eq!(created["signing_key"].as_str().unwrap().len(), 64);
        let submitted: Value = seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await
            .json()
            .await
            .unwrap();
        let rev = &submitted["current"];
        let submitted_at: chrono::DateTime<chrono::Utc> =
            rev["submitted_at"].as_str().unwrap().parse().unwrap();
        let due: chrono::DateTime<chrono::Utc> = rev["due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            due,
            souk_core::calendar::WorkCalendar::default().add_working_days(submitted_at, 3)
        );
        assert!(due - submitted_at >= chrono::Duration::days(3));
        // Editing while in review is refused.
        assert_problem(
            seller
                .put(
                    &format!("/v1/seller/products/{id}/draft"),
                    product_body("Notes 2", "https://acme.test/souk", "10"),
                )
                .await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["overdue"], false);
        assert_eq!(queue[0]["kind"], "new");
        app.advance(6 * 86_400).await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["overdue"], true);
        let rev_id = queue[0]["revision_id"].as_str().unwrap().to_owned();
        assert_problem(
            op.post(
                &format!("/v1/operator/reviews/{rev_id}/decision"),
                json!({"approve": false}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reasons"),
        )
        .await;
        let rejected: Value = op
            .post(
                &format!("/v1/operator/reviews/{rev_id}/decision"),
                json!({"approve": false, "reasons": ["the logo is missing"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rejected["state"], "rejected");
        let mine = seller.json(&format!("/v1/seller/products/{id}")).await;
        assert_eq!(mine["current"]["reasons"], json!(["the logo is missing"]));
        // Rejected: editable again, resubmitted, approved, listed.
        assert_eq!(
            seller
                .put(
                    &format!("/v1/seller/products/{id}/draft"),
                    product_body("Notes", "https://acme.test/souk", "12")
                )
                .await
                .status(),
            StatusCode::OK
        );
        seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await;
        let rev_id = op.json("/v1/operator/reviews").await[0]["revision_id"]
            .as_str()
            .unwrap()
            .to_owned();
        op.approve_review(&rev_id).await;
        let public = TestApp::client();
        let listed: Value = app.public_json(&format!("/v1/products/{id}")).await;
        assert_eq!(listed["plans"][0]["monthly_price"], "12");
        let plan_id = listed["plans"][0]["id"].as_str().unwrap().to_owned();

        // A change request: the listed version stays until the change is approved.
        let mut change = product_body("Notes Pro", "https://acme.test/souk", "15");
        change["plans"][0]["id"] = json!(plan_id);
        // A listed plan keeps its currency: its orders and use are counted in it.
        let mut in_dollars = change.clone();
        in_dollars["plans"][0]["currency"] = json!("USD");
        assert_problem(seller.put(&format!("/v1/seller/products/{id}/draft"), in_dollars).await, StatusCode::UNPROCESSABLE_ENTITY, Some("plans[0].currency")).await;
        // A listed plan is listed once: a second entry with its id would reprice it unseen.
        let mut twice = change.clone();
        let mut copy = change["plans"][0].clone();
        copy["name"] = json!("Dup of first");
        copy["monthly_price"] = json!("1.00");
        twice["plans"].as_array_mut().unwrap().push(copy);
        assert_problem(seller.put(&format!("/v1/seller/products/{id}/draft"), twice).await, StatusCode::UNPROCESSABLE_ENTITY, Some("plans[1].id")).await;
        let res = seller
            .put(&format!("/v1/seller/products/{id}/draft"), change)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let mine: Value = res.json().await.unwrap();
        assert_eq!(
            (
                mine["current"]["kind"].as_str(),
                mine["current"]["state"].as_str(),
                mine["state"].as_str()
            ),
            (Some("change"), Some("draft"), Some("listed"))
        );
        seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["kind"], "change");
        app.state.catalog.invalidate().await;
        let still: Value = app.public_json(&format!("/v1/products/{id}")).await;
        assert_eq!(still["name"], "Notes");
        op.post(
            &format!(
                "/v1/operator/reviews/{}/decision",
                queue[0]["revision_id"].as_str().unwrap()
            ),
            json!({"approve": true}),
        )
        .await;
        let changed: Value = app.public_json(&format!("/v1/products/{id}")).await;
        assert_eq!(
            (
                changed["name"].as_str(),
                changed["plans"][0]["monthly_price"].as_str()
            ),
            (Some("Notes Pro"), Some("15"))
        );
        assert_eq!(
            changed["plans"][0]["id"],
            json!(plan_id),
            "the plan keeps its id"
        );

        // Delisting stops new purchases.
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100").await;
        assert_eq!(
            seller
                .post(&format!("/v1/seller/products/{id}/delist"), json!({}))
                .await
                .status(),
            StatusCode::OK
        );
        assert_problem(
            public
                .get(format!("{}/v1/products/{id}", app.base))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            buyer.order(&plan_id, 1, None).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        assert_problem(
            seller
                .post(&format!("/v1/seller/products/{id}/delist"), json!({}))
                .await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn rejections_need_a_reason_and_can_be_answered_by_resubmitting(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let u = app.sign_up("enterprise", "ent@acme.test").await;
        let details = json!({"legal_name": "Li", "phone": "+86 21 0000 0000", "company_name": "Acme Ltd", "registration_number": "9131"});
        assert_eq!(
            u.post("/v1/me/verification", details.clone())
                .await
                .status(),
            StatusCode::ACCEPTED
        );
        // Submitting twice while pending is refused.
        assert_problem(
            u.post("/v1/me/verification", details.clone()).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        let decide = format!("/v1/operator/verifications/{}/decision", u.id);
        assert_problem(
            op.post(&decide, json!({"approve": false})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        )
        .await;
        let rejected: Value = op
            .post(
                &decide,
                json!({"approve": false, "reason": "the licence scan is unreadable"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rejected["verification"]["state"], "rejected");
        let me = u.json("/v1/me").await;
        assert_eq!(
            me["verification"]["reason"],
            "the licence scan is unreadable"
        );
        // Not verified: no merchant application yet.
        let application = json!({"company_name": "Acme Ltd", "support_email": "s@acme.test", "support_phone": "400", "business_licence_number": "BL"});
        assert_problem(
            u.post("/v1/merchant", application.clone()).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        assert_eq!(
            u.post("/v1/me/verification", details).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            op.post(&decide, json!({"approve": true})).await.status(),
            StatusCode::OK
        );
        assert_problem(
            op.post(&decide, json!({"approve": true})).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;

        let m: Value = u
            .post("/v1/merchant", application.clone())
            .await
            .json()
            .await
            .unwrap();
        let decide = format!(
            "/v1/operator/merchants/{}/decision",
            m["id"].as_str().unwrap()
        );
        assert_eq!(op.json("/v1/operator/merchants").await[0]["id"], m["id"]);
        let rejected: Value = op
            .post(
                &decide,
                json!({"approve": false, "reason": "no support phone answers"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (rejected["state"].as_str(), rejected["reason"].as_str()),
            (Some("rejected"), Some("no support phone answers"))
        );
        assert_problem(
            u.post(
                "/v1/seller/products",
                product_body("X", "https://x.co", "1"),
            )
            .await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;
        let again: Value = u
            .post("/v1/merchant", application)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (again["state"].as_str(), again["id"].as_str()),
            (Some("pending"), m["id"].as_str())
        );
        assert_eq!(
            op.post(&decide, json!({"approve": true})).await.status(),
            StatusCode::OK
        );
        assert_eq!(u.json("/v1/merchant").await["state"], "approved");

        // Logging out ends the session.
        assert_eq!(
            u.client
                .delete(format!("{}/v1/sessions/current", app.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
        assert_problem(u.get("/v1/me").await, StatusCode::UNAUTHORIZED, None).await;
        app.cleanup().await;
    }
}
