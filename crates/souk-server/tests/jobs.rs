//! The job queue for operators: a job that gave up is listed dead with every attempt it made,
//! and replaying it runs it again with a fresh budget; only operations may see or replay jobs.
//! Done jobs are forgotten after the configured time; dead ones are kept.

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

        // The attempt is recorded just after the job ends.
        let dead = op
            .wait_for("/v1/operator/jobs?state=dead", |d| {
                d["items"][0]["history"].as_array().is_some_and(|h| !h.is_empty())
            })
            .await;
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
        // The skip is on the instance's record, for the seller and operators; the buyer's
        // timeline tells of the subscription only.
        let recorded = app.state.store.instance_timeline(&ins.into()).await.unwrap();
        assert!(recorded.iter().any(|e| e.kind == "job.skipped"), "{recorded:?}");
        assert!(!instance["timeline"].to_string().contains("job."), "{instance}");
        // Only a dead job can be replayed.
        let again = op.post(&format!("/v1/operator/jobs/{id}/replay"), json!({})).await;
        let problem = assert_problem(again, StatusCode::CONFLICT, None).await;
        assert_eq!(problem["type"], "urn:souk:problem:transition-refused");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "100.00");
        assert!(op.json("/v1/operator/jobs?state=dead").await["items"].as_array().unwrap().is_empty());
        app.cleanup().await;
    }

    async fn done_jobs_are_forgotten_after_the_kept_days_and_dead_ones_kept(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        // Fails once, then creates: the done job keeps both attempts.
        let (good, _) = stub_seller("000000", 1, KEY).await;
        let (refusing, _) = stub_seller("000106", 0, KEY).await;
        let (seller, _, kept_plan) = product_with(&app, &op, &good, "10.00").await;
        let (_, refused_plan, _) = app.listed_product(&op, &seller, "Refused Notes", &refusing, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let bought: Value = buyer.order(&kept_plan, 1, None).await.json().await.unwrap();
        let refused: Value = buyer.order(&refused_plan, 1, None).await.json().await.unwrap();
        let active = format!("/v1/instances/{}", bought["instance_id"].as_str().unwrap());
        app.advance_until(&buyer, &active, (60, 20), |v| v["state"] == "active").await;
        let failed = format!("/v1/instances/{}", refused["instance_id"].as_str().unwrap_or_else(|| panic!("{refused}")));
        buyer.wait_for(&failed, |v| v["state"] == "failed").await;
        let listed = op.json("/v1/operator/jobs?state=done").await;
        let done = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "seller.new_instance" && j["instance_id"] == bought["instance_id"])
            .unwrap_or_else(|| panic!("{listed}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The attempt is recorded just after the job ends.
        op.wait_for(&format!("/v1/operator/jobs/{done}"), |j| j["history"].as_array().unwrap().len() == 2).await;
        let dead = op.json("/v1/operator/jobs?state=dead").await["items"][0]["id"].as_str().unwrap().to_owned();
        let attempts = |id: String| {
            let pool = app.state.store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM job_attempts WHERE job_id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(attempts(done.clone()).await, 2);
        let forget = || souk_server::workers::housekeeping::forget_done_jobs(&app.state);

        // Younger than the kept 30 days: nothing is forgotten. Each sweep waits for the work a
        // clock jump made due: a job still running while a sweep reads the queue would end dated
        // before the jump, already past the cutoff, and the second sweep below would find it.
        app.advance(29 * 86_400).await;
        assert!(app.queue_at_rest().await, "the job queue did not come to rest");
        assert_eq!(forget().await.unwrap(), 0);
        assert_eq!(op.get(&format!("/v1/operator/jobs/{done}")).await.status(), StatusCode::OK);

        // Past them: the done job and its attempts go, the dead one stays, and so do the
        // instance, its timeline and the money.
        app.advance(2 * 86_400).await;
        assert!(app.queue_at_rest().await, "the job queue did not come to rest");
        let mut forgotten = forget().await.unwrap();
        for _ in 0..6 {
            if forgotten > 0 {
                break;
            }
            // Ids within one process never go back in time, so while another test ran its clock
            // ahead, this one's job may carry a later time in its id; the sweep reads ids older
            // than the cutoff only, so it forgets the job once that time is old enough.
            app.advance(31 * 86_400).await;
            assert!(app.queue_at_rest().await, "the job queue did not come to rest");
            forgotten = forget().await.unwrap();
        }
        assert!(forgotten >= 1);
        assert_problem(op.get(&format!("/v1/operator/jobs/{done}")).await, StatusCode::NOT_FOUND, None).await;
        assert_eq!(attempts(done.clone()).await, 0);
        assert_eq!(op.json(&format!("/v1/operator/jobs/{dead}")).await["state"], "dead");
        assert_eq!(attempts(dead.clone()).await, 1);
        let instance = buyer.json(&active).await;
        assert!(instance["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "instance.active"), "{instance}");
        assert_eq!(forget().await.unwrap(), 0, "a second sweep finds nothing left");
        assert!(app.state.store.ledger_mismatches().await.unwrap().is_empty());

        // The console's list of done jobs says how long they are kept; the dead one is listed.
        let page = op.get("/console/jobs?state=done").await.text().await.unwrap();
        assert!(page.contains("Done jobs are kept for 30 days"), "{page}");
        assert!(!page.contains(&done), "{page}");
        let page = op.get("/console/jobs?state=dead").await.text().await.unwrap();
        assert!(page.contains(&dead) && !page.contains("kept for"), "{page}");

        // /metrics counts the queue by its partial indexes: done jobs are not a gauge.
        let metrics = op.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("souk_jobs{state=\"dead\"} 1"), "{metrics}");
        assert!(metrics.contains("souk_jobs{state=\"pending\"}"), "{metrics}");
        assert!(!metrics.contains("souk_jobs{state=\"done\"}"), "{metrics}");

        // A job made long ago but done just now is kept: it is forgotten by when it ended.
        let replayed = op.post(&format!("/v1/operator/jobs/{dead}/replay"), json!({})).await;
        assert_eq!(replayed.status(), StatusCode::OK);
        op.wait_for(&format!("/v1/operator/jobs/{dead}"), |j| j["state"] == "done").await;
        assert_eq!(forget().await.unwrap(), 0);
        assert_eq!(op.json(&format!("/v1/operator/jobs/{dead}")).await["state"], "done");
        app.cleanup().await;
    }
}
