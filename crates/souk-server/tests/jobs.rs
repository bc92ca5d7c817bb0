//! The job queue for operators: a job that gave up is listed dead with every attempt it made,
//! and replaying it runs it again with a fresh budget; only operations may see or replay jobs.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn a_dead_job_is_listed_with_its_attempts_and_replayed_once(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        // A seller that refuses for good: provisioning fails, the order is refunded, the job dies.
        let (endpoint, _) = stub_seller("000106", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "80.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let ins = order["instance_id"].as_str().unwrap();
        buyer
            .wait_for(&format!("/v1/instances/{ins}"), |v| v["state"] == "failed")
            .await;

        let dead = op.json("/v1/operator/jobs?state=dead").await;
        let items = dead["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{dead}");
        let job = &items[0];
        assert_eq!(job["kind"], "seller.new_instance");
        assert_eq!(job["instance_id"], ins);
        let history = job["history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "{job}");
        assert_eq!(history[0]["attempt"], 1);
        assert!(history[0]["request"].as_str().unwrap().starts_with("newInstance for instance"));
        assert!(history[0]["answer"].as_str().unwrap().starts_with("000106"), "{job}");
        assert!(history[0]["latency_ms"].as_i64().unwrap() >= 0);
        // What a job records never carries the signed URL of the call.
        assert!(!job.to_string().contains("signature="), "{job}");

        // Buyers and sellers see no jobs; a bad state is named.
        assert_problem(buyer.get("/v1/operator/jobs").await, StatusCode::FORBIDDEN, None).await;
        assert_problem(op.get("/v1/operator/jobs?state=lost").await, StatusCode::UNPROCESSABLE_ENTITY, Some("state")).await;
        let id = job["id"].as_str().unwrap();
        assert_problem(
            buyer.post(&format!("/v1/operator/jobs/{id}/replay"), json!({})).await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;

        // Replayed: due now with a fresh budget. Its handler decides on the present state: the
        // provisioning was refunded meanwhile, so nothing is created twice.
        let replayed = op.post(&format!("/v1/operator/jobs/{id}/replay"), json!({})).await;
        assert_eq!(replayed.status(), StatusCode::OK);
        let done = op
            // The attempt is recorded just after the job ends.
            .wait_for(&format!("/v1/operator/jobs/{id}"), |j| {
                j["state"] == "done" && j["history"].as_array().unwrap().len() == 2
            })
            .await;
        assert_eq!(done["history"].as_array().unwrap().len(), 2, "{done}");
        let instance = buyer.json(&format!("/v1/instances/{ins}")).await;
        assert_eq!(instance["state"], "failed");
        assert!(instance["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "job.skipped"));
        // Only a dead job can be replayed.
        let again = op.post(&format!("/v1/operator/jobs/{id}/replay"), json!({})).await;
        let problem = assert_problem(again, StatusCode::CONFLICT, None).await;
        assert_eq!(problem["type"], "urn:souk:problem:transition-refused");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "100.00");
        assert!(op.json("/v1/operator/jobs?state=dead").await["items"].as_array().unwrap().is_empty());
        app.cleanup().await;
    }
}
