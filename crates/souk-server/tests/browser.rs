//! The web pages in headless Chromium, driven through WebDriver (chromedriver) against a running
//! souk: a visitor signs up, is verified in the console, buys, watches the subscription become
//! active and renews it; a seller applies, lists a product with two plans, is rejected with a
//! reason, fixes it and is approved; a buyer without balance sees what is missing; a form without
//! its CSRF token changes nothing; another buyer's order is not found. The SQLite run saves
//! screenshots of the main pages, at desktop and phone widths, to docs/screenshots/.
//!
//! Needs `chromium` and `chromedriver` (Debian's packages). Without them the tests say they are
//! skipped, unless `SOUK_REQUIRE_BROWSER=1` (CI), where that is a failure.

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_server::Settings;
use souk_store::on_both_databases;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver of this test's own, or `None` (skipped) where none is installed.
async fn driver() -> Option<Driver> {
    // Two TLS backends are linked into this test binary; both ends speak plain HTTP here, but
    // rustls wants one chosen before any client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let installed = ["/usr/bin/chromedriver", "/usr/bin/chromium"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !installed {
        assert!(
            std::env::var("SOUK_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "SOUK_REQUIRE_BROWSER=1 but chromium and chromedriver are not installed"
        );
        eprintln!("browser tests: skipped (chromium and chromedriver are not installed)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
        port,
    );
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/status"))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

/// A browser of its own (its own cookies), desktop width.
async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::map::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.1))
        .await
        .expect("a browser session")
}

struct Page<'a> {
    c: &'a Client,
    base: &'a str,
}

impl Page<'_> {
    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
        self.c
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap();
    }

    async fn fill(&self, name: &str, value: &str) {
        let e = self
            .c
            .find(Locator::Css(&format!("[name=\"{name}\"]")))
            .await
            .unwrap_or_else(|_| panic!("no field {name}"));
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    async fn select(&self, name: &str, value: &str) {
        self.c
            .find(Locator::Css(&format!("select[name=\"{name}\"]")))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Clicks what stays on the page (a disclosure's summary).
    async fn toggle(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("nothing matches {css}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks what navigates (a link, a form's button) and waits until the next page is there.
    async fn click(&self, css: &str) {
        let old = self.c.find(Locator::Css("html")).await.unwrap();
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("nothing matches {css}"))
            .click()
            .await
            .unwrap();
        for _ in 0..100 {
            // The old document's element goes stale once the next page has replaced it.
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.c
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap();
    }

    async fn text(&self) -> String {
        self.c
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_owned()
    }

    async fn log_in(&self, email: &str, password: &str) {
        self.go("/login").await;
        self.fill("email", email).await;
        self.fill("password", password).await;
        self.click("main form button[type=submit]").await;
        assert!(
            self.text().await.contains("You are logged in"),
            "{}",
            self.text().await
        );
    }

    /// Saves a screenshot at desktop and phone widths (SQLite run only).
    async fn shoot(&self, name: &str, save: bool) {
        if !save {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        for (width, height, label) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            self.c.set_window_size(width, height).await.unwrap();
            let png = self.c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{label}.png")), png).unwrap();
        }
        self.c.set_window_size(1280, 900).await.unwrap();
    }
}

/// A listed product calling souk's built-in demo seller; returns its id.
async fn demo_product(app: &TestApp, op: &User, name: &str) -> String {
    let seller = app
        .merchant(
            op,
            &format!("{}@seller.test", name.to_lowercase().replace(' ', ".")),
        )
        .await;
    let mut body = product_body(name, &format!("{}/demo-seller", app.base), "99.00");
    body["plans"][0]["trial_days"] = json!(14);
    body["plans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "Business", "currency": "CNY", "monthly_price": "199.00"}));
    body["signing_key"] = json!(souk_server::demo_seller::DEMO_SIGNING_KEY);
    let res = seller.post("/v1/seller/products", body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let p: Value = res.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    seller
        .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
        .await;
    op.approve_review(p["current"]["id"].as_str().unwrap())
        .await;
    id
}

async fn spawn(backend: souk_store::Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Settings {
            demo_seller: true,
            ..Settings::for_tests()
        },
    )
    .await
}

on_both_databases! {
    async fn a_visitor_signs_up_is_verified_buys_and_renews_in_the_browser(backend) {
        let Some(d) = driver().await else { return };
        let save = backend == souk_store::Backend::Sqlite;
        let app = spawn(backend).await;
        let op = app.operator().await;
        let product = demo_product(&app, &op, "Acme Notes").await;
        let (buyer_browser, op_browser) = (browser(&d).await, browser(&d).await);
        let b = Page { c: &buyer_browser, base: &app.base };
        let o = Page { c: &op_browser, base: &app.base };

        // A visitor finds the product.
        b.go("/").await;
        b.shoot("home", save).await;
        b.fill("q", "notes").await;
        b.click("main form button[type=submit]").await;
        assert!(b.text().await.contains("Acme Notes"));
        b.shoot("search", save).await;
        b.go(&format!("/products/{product}")).await;
        b.shoot("product", save).await;

        // Signs up, and sends verification details.
        b.go("/signup").await;
        b.fill("name", "Bao").await;
        b.fill("email", "bao@buyer.test").await;
        b.fill("password", "short").await;
        b.click("main form button[type=submit]").await;
        let refused = b.text().await;
        assert!(refused.contains("There is a problem") && refused.contains("10 to 128 characters"), "{refused}");
        assert_eq!(
            buyer_browser.find(Locator::Css("[name=email]")).await.unwrap().prop("value").await.unwrap().as_deref(),
            Some("bao@buyer.test"),
            "what was typed is kept"
        );
        b.fill("password", "correct horse battery").await;
        b.click("main form button[type=submit]").await;
        assert_eq!(b.path().await, "/account/verification");
        b.fill("legal_name", "Bao Buyer").await;
        b.fill("phone", "+86 138 0000 0000").await;
        b.fill("id_number", "110101199001010000").await;
        b.click("main form button[type=submit]").await;
        assert!(b.text().await.contains("pending"));

        // An operator verifies the buyer and records a top-up in the console.
        o.log_in("operator@souk.test", "operator password").await;
        o.go("/console").await;
        o.shoot("console", save).await;
        let buyer_id = app.state.store.account_by_email("bao@buyer.test").await.unwrap().unwrap().id;
        o.click(&format!("form[action=\"/console/verifications/{buyer_id}\"] button[value=approve]")).await;
        assert!(o.text().await.contains("Decision recorded"));
        o.go(&format!("/console/accounts/{buyer_id}")).await;
        o.fill("amount", "500.00").await;
        o.fill("reference", "bank-0001").await;
        o.click("main form button[type=submit]").await;
        assert!(o.text().await.contains("500.00 CNY"), "{}", o.text().await);

        // The buyer buys, and watches the subscription become active in place.
        b.go(&format!("/products/{product}")).await;
        b.click("main .plans a.button").await;
        b.fill("periods", "2").await;
        b.click("main form.stack button[type=submit]").await;
        assert!(b.text().await.contains("198.00 CNY"), "{}", b.text().await);
        b.shoot("buy", save).await;
        b.click("aside form button[type=submit]").await;
        assert!(b.path().await.starts_with("/instances/"));
        let mut state = String::new();
        for _ in 0..200 {
            // While the page reloads itself the element is briefly not there.
            if let Ok(e) = buyer_browser.find(Locator::Id("state")).await {
                state = e.text().await.unwrap_or_default();
            }
            if state == "active" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, "active", "the page updated itself: {}", b.text().await);
        let subscription = b.path().await;
        b.shoot("subscription", save).await;
        b.fill("periods", "1").await;
        b.click("main form.stack button[type=submit]").await;
        assert!(b.text().await.contains("Renewed"), "{}", b.text().await);
        b.go("/balance").await;
        let ledger = b.text().await;
        assert!(ledger.contains("203.00 CNY"), "500 - 198 - 99 = 203: {ledger}");
        b.shoot("balance", save).await;
        b.go("/orders").await;
        assert_eq!(buyer_browser.find_all(Locator::Css("main tbody tr")).await.unwrap().len(), 2);
        b.shoot("orders", save).await;
        assert!(app.state.store.ledger_mismatches().await.unwrap().is_empty());

        // A key for the buyer's billing script: its secret is on the page that makes it.
        b.go("/access-keys").await;
        b.fill("name", "billing-bot").await;
        b.select("policy", "billing").await;
        b.click("main form.stack button[type=submit]").await;
        assert!(b.text().await.contains("The user was added"), "{}", b.text().await);
        b.click("main .card form button[type=submit]").await;
        let secret = buyer_browser.find(Locator::Id("sk")).await.unwrap().text().await.unwrap();
        assert_eq!(secret.len(), 40);
        b.shoot("access-keys", save).await;

        // The buyer changes their mind: the renewal goes back, then the whole subscription, each
        // in full within the first days.
        b.go(&subscription).await;
        b.click("#give-back button[type=submit]").await;
        assert!(b.text().await.contains("given back"), "{}", b.text().await);
        b.click("#unsubscribe button[type=submit]").await;
        assert!(b.text().await.contains("tick the box"), "unconfirmed: {}", b.text().await);
        b.shoot("unsubscribe", save).await;
        buyer_browser.find(Locator::Css("#unsubscribe input[name=confirm]")).await.unwrap().click().await.unwrap();
        b.click("#unsubscribe button[type=submit]").await;
        assert!(b.text().await.contains("Unsubscribed"), "{}", b.text().await);
        b.go("/balance").await;
        assert!(b.text().await.contains("500.00 CNY"), "all back: {}", b.text().await);
        app.assert_ledger_balances().await;

        // A free trial, then paid for on the same subscription; a second trial is refused.
        b.go(&format!("/products/{product}")).await;
        b.click("main .plans form button[type=submit]").await;
        assert!(b.text().await.contains("free trial started"), "{}", b.text().await);
        let trial = b.path().await;
        for _ in 0..200 {
            if b.text().await.contains("Keep it: pay for it") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.go(&trial).await;
        }
        b.shoot("trial", save).await;
        b.fill("periods", "1").await;
        b.click("#convert button[type=submit]").await;
        assert!(b.text().await.contains("The subscription runs from now"), "{}", b.text().await);
        assert_eq!(b.path().await, trial, "the trial's own subscription was paid for");
        // The paid month moves to Business: the page says what the time left costs there.
        b.go(&trial).await;
        assert!(b.text().await.contains("Upgrade to Business"), "{}", b.text().await);
        buyer_browser.execute("document.getElementById('change-plan').scrollIntoView()", vec![]).await.unwrap();
        b.shoot("plan-change", save).await;
        b.click("#plan-change button[type=submit]").await;
        let changed = b.text().await;
        assert!(changed.contains("The plan changed") && changed.contains("Business"), "{changed}");
        app.assert_ledger_balances().await;
        b.go(&format!("/products/{product}")).await;
        assert!(b.text().await.contains("You have had this product's free trial"), "{}", b.text().await);
        assert!(buyer_browser.find(Locator::Css("main .plans form button[type=submit]")).await.is_err(), "no second trial is offered");

        // Operations run a promotion in the console; the buyer sees it on the product and pays less.
        o.go("/console/promotions").await;
        o.fill("product_id", &product).await;
        o.fill("percent_off", "95").await;
        o.fill("ends_on", &(app.state.now() + chrono::Duration::days(7)).format("%Y-%m-%d").to_string()).await;
        o.click("main form.stack button[type=submit]").await;
        assert!(o.text().await.contains("1 to 90 percent"), "{}", o.text().await);
        o.fill("percent_off", "50").await;
        o.click("main form.stack button[type=submit]").await;
        assert!(o.text().await.contains("The promotion was saved"), "{}", o.text().await);
        o.shoot("promotions", save).await;
        b.go(&format!("/products/{product}")).await;
        assert!(b.text().await.contains("50% off"), "{}", b.text().await);
        b.click("main .plans a.button").await;
        let summary = b.text().await;
        assert!(summary.contains("49.50 CNY") && summary.contains("99.00 CNY"), "{summary}");

        // Finance gives the buyer credit; the buyer's balance page says how far it goes.
        o.go(&format!("/console/accounts/{buyer_id}")).await;
        o.fill("limit", "-5").await;
        o.click("#credit button[type=submit]").await;
        assert!(o.text().await.contains("a credit limit is from 0"), "{}", o.text().await);
        o.fill("limit", "100").await;
        o.click("#credit button[type=submit]").await;
        assert!(o.text().await.contains("The credit limit was set") && o.text().await.contains("100.00 CNY"), "{}", o.text().await);
        b.go("/balance").await;
        assert!(b.text().await.contains("Credit limit: 100.00 CNY"), "{}", b.text().await);

        // Everything above was told to the buyer: the bar counts the unread, the page lists them
        // in words, and the buyer picks what also comes by e-mail.
        let mut notices = String::new();
        for _ in 0..100 {
            b.go("/notifications").await;
            notices = b.text().await;
            if notices.contains("is ready") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(notices.contains("Order paid: ") && notices.contains("unread"), "{notices}");
        let bar = buyer_browser.find(Locator::Css("header.top a[href='/notifications']")).await.unwrap().text().await.unwrap();
        assert!(bar.starts_with("Notifications ") && bar.trim_start_matches("Notifications ").parse::<u32>().unwrap() > 0, "{bar}");
        b.shoot("notifications", save).await;
        b.toggle("input[name=email_order]").await;
        b.click("form[action='/notifications/preferences'] button[type=submit]").await;
        assert!(b.text().await.contains("Your e-mail choices were saved"), "{}", b.text().await);
        let order_box = buyer_browser.find(Locator::Css("input[name=email_order]")).await.unwrap();
        assert_eq!(order_box.prop("checked").await.unwrap().as_deref(), Some("false"));
        b.click("main .toolbar form button[type=submit]").await;
        assert!(b.text().await.contains("Nothing unread"), "{}", b.text().await);

        buyer_browser.close().await.unwrap();
        op_browser.close().await.unwrap();
        app.cleanup().await;
    }

    async fn a_seller_is_rejected_fixes_and_is_listed_in_the_browser(backend) {
        let Some(d) = driver().await else { return };
        let save = backend == souk_store::Backend::Sqlite;
        let app = spawn(backend).await;
        let op = app.operator().await;
        // A verified company (its verification was tested above).
        let company = app.sign_up("enterprise", "li@acme.test").await;
        company
            .post("/v1/me/verification", json!({"legal_name": "Li", "phone": "+86 21 0000 0000", "company_name": "Acme Ltd", "registration_number": "91310000MA1FL0000X"}))
            .await;
        op.post(&format!("/v1/operator/verifications/{}/decision", company.id), json!({"approve": true})).await;
        let (seller_browser, op_browser) = (browser(&d).await, browser(&d).await);
        let s = Page { c: &seller_browser, base: &app.base };
        let o = Page { c: &op_browser, base: &app.base };

        s.log_in("li@acme.test", "correct horse battery").await;
        s.go("/seller").await;
        s.fill("company_name", "Acme Ltd").await;
        s.fill("support_email", "support@acme.test").await;
        s.fill("support_phone", "400-000").await;
        s.fill("business_licence_number", "BL-1").await;
        s.click("main form button[type=submit]").await;
        assert!(s.text().await.contains("pending"));
        let merchant = app.state.store.merchant_of(&company.id.as_str().into()).await.unwrap().unwrap();
        o.log_in("operator@souk.test", "operator password").await;
        o.go("/console").await;
        o.click(&format!("form[action=\"/console/merchants/{}\"] button[value=approve]", merchant.id)).await;

        // A product with two plans; a bad price is named on its field.
        s.go("/seller/products/new").await;
        s.fill("name", "Acme Meet").await;
        s.fill("summary", "Video meetings for teams").await;
        s.select("category", "collaboration").await;
        s.fill("support_contact", "support@acme.test").await;
        s.fill("endpoint_url", &format!("{}/demo-seller", app.base)).await;
        s.fill("signing_key", souk_server::demo_seller::DEMO_SIGNING_KEY).await;
        s.fill("plans[0].name", "Team").await;
        s.fill("plans[0].monthly_price", "49.123456789").await;
        s.fill("plans[1].name", "Business").await;
        s.fill("plans[1].currency", "CNY").await;
        s.fill("plans[1].yearly_price", "4900").await;
        s.shoot("seller-product-form", save).await;
        s.click("main form button[type=submit]").await;
        let refused = s.text().await;
        assert!(refused.contains("at most 8 decimals"), "{refused}");
        assert!(seller_browser.find(Locator::Css(".field-error [name=\"plans[0].monthly_price\"]")).await.is_ok());
        s.fill("plans[0].monthly_price", "49.00").await;
        s.click("main form button[type=submit]").await;
        assert!(s.text().await.contains("Signing key"), "the key is shown once, after creation");
        s.click("main form[action$=\"/submit\"] button").await;
        assert!(s.text().await.contains("in_review"));

        // The reviewer rejects with a reason; the seller sees it, fixes the draft and resubmits.
        o.go("/console").await;
        o.fill("reason", "Add a description of what a meeting room includes").await;
        o.click("form[action^=\"/console/reviews/\"] button[value=reject]").await;
        s.go("/seller").await;
        assert!(s.text().await.contains("Add a description"));
        s.shoot("seller", save).await;
        let product = app.state.store.products_of_merchant(&merchant.id).await.unwrap()[0].id.to_string();
        s.go(&format!("/seller/products/{product}/edit")).await;
        s.fill("description", "Rooms for up to 300 people, recorded to your storage.").await;
        s.click("main form button[type=submit]").await;
        s.click("main form[action$=\"/submit\"] button").await;
        o.go("/console").await;
        o.click("form[action^=\"/console/reviews/\"] button[value=approve]").await;

        // Listed: buyers find it.
        s.go("/search?q=meet").await;
        assert!(s.text().await.contains("Acme Meet"), "{}", s.text().await);
        seller_browser.close().await.unwrap();
        op_browser.close().await.unwrap();
        app.cleanup().await;
    }

    async fn metered_use_is_priced_bought_and_shown_in_the_browser(backend) {
        let Some(d) = driver().await else { return };
        let save = backend == souk_store::Backend::Sqlite;
        let app = spawn(backend).await;
        // Charged use counts in the running month: the hour walked below stays in one.
        app.to_early_in_next_month().await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@lotus.test").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let (seller_browser, buyer_browser) = (browser(&d).await, browser(&d).await);
        let s = Page { c: &seller_browser, base: &app.base };
        let b = Page { c: &buyer_browser, base: &app.base };

        // The seller prices pages on demand in the product form; a malformed tier is named.
        s.log_in("seller@lotus.test", "correct horse battery").await;
        s.go("/seller/products/new").await;
        s.fill("name", "Lotus OCR").await;
        s.fill("summary", "Invoice recognition").await;
        s.select("category", "ai").await;
        s.fill("support_contact", "help@lotus.test").await;
        s.fill("endpoint_url", &format!("{}/demo-seller", app.base)).await;
        s.fill("signing_key", souk_server::demo_seller::DEMO_SIGNING_KEY).await;
        s.fill("plans[0].name", "Pay as you go").await;
        s.toggle("fieldset details summary").await;
        s.fill("plans[0].dimensions[0].key", "pages").await;
        s.fill("plans[0].dimensions[0].unit", "page").await;
        s.fill("plans[0].dimensions[0].price", "0.05").await;
        s.fill("plans[0].dimensions[0].tiers", "100000:cheap").await;
        s.click("main form button[type=submit]").await;
        let refused = s.text().await;
        assert!(refused.contains("is not a decimal price"), "{refused}");
        s.fill("plans[0].dimensions[0].tiers", "100000:0.03").await;
        s.click("main form button[type=submit]").await;
        assert!(s.text().await.contains("Signing key"), "{}", s.text().await);
        s.click("main form[action$=\"/submit\"] button").await;
        let queue: Value = op.get("/v1/operator/reviews").await.json().await.unwrap();
        op.approve_review(queue[0]["revision_id"].as_str().unwrap()).await;
        let product = queue[0]["product_id"].as_str().unwrap().to_owned();

        // The buyer sees the prices in words and buys on demand: nothing up front.
        b.log_in("buyer@souk.test", "correct horse battery").await;
        b.go(&format!("/products/{product}")).await;
        let page = b.text().await;
        assert!(page.contains("0.05 CNY per page (pages); 0.03 from 100000 in a period"), "{page}");
        b.click("main .plans a.button").await;
        assert!(b.text().await.contains("on demand: nothing now"), "{}", b.text().await);
        b.click("aside form button[type=submit]").await;
        let subscription = b.path().await;
        let instance = subscription.rsplit('/').next().unwrap().to_owned();
        buyer.wait_for(&format!("/v1/instances/{instance}"), |v| v["state"] == "active").await;

        // The seller's meter reports; the buyer sees it waiting, then charged once the hour ends.
        let now = app.state.now();
        let answer = seller.expect_post("/v1/metering/usage", json!({"records": [{"record_id": "scan-1", "instance_id": instance, "dimension": "pages",
            "quantity": "120", "usage_start": (now - chrono::Duration::minutes(4)).to_rfc3339(), "usage_end": (now - chrono::Duration::minutes(1)).to_rfc3339()}]}), StatusCode::OK).await;
        assert_eq!(answer["accepted"], 1, "{answer}");
        s.go("/seller/usage").await;
        assert!(s.text().await.contains("120"), "{}", s.text().await);
        app.advance(3600).await;
        buyer.wait_for(&format!("/v1/instances/{instance}/usage"), |u| u["dimensions"][0]["rated"] == "120").await;
        b.go(&subscription).await;
        let page = b.text().await;
        assert!(page.contains("Metered use") && page.contains("6.00 CNY"), "{page}");
        b.shoot("usage", save).await;
        s.go("/seller/usage").await;
        assert!(s.text().await.contains("6.00 CNY") && s.text().await.contains("Lotus OCR ("), "{}", s.text().await);
        s.shoot("seller-usage", save).await;
        seller_browser.close().await.unwrap();
        buyer_browser.close().await.unwrap();
        app.cleanup().await;
    }

    async fn short_balances_forged_forms_and_other_peoples_orders_change_nothing(backend) {
        let Some(d) = driver().await else { return };
        let app = spawn(backend).await;
        let op = app.operator().await;
        let product = demo_product(&app, &op, "Acme Notes").await;
        let rich = app.verified_buyer(&op, "rich@buyer.test").await;
        app.top_up(&op, &rich, "500.00").await;
        let plan = app.public_json(&format!("/v1/products/{product}")).await["plans"][0]["id"].as_str().unwrap().to_owned();
        let order: Value = rich.order(&plan, 1, None).await.json().await.unwrap();
        app.verified_buyer(&op, "poor@buyer.test").await;

        let c = browser(&d).await;
        let p = Page { c: &c, base: &app.base };
        p.log_in("poor@buyer.test", "correct horse battery").await;
        p.go(&format!("/products/{product}/buy?plan={plan}&periods=3")).await;
        let text = p.text().await;
        assert!(text.contains("Not enough balance: 297.00 CNY missing"), "{text}");
        assert!(c.find(Locator::Css("aside form button")).await.is_err(), "no pay button");
        // Another buyer's order is not found.
        p.go(&format!("/orders/{}", order["id"].as_str().unwrap())).await;
        assert!(p.text().await.contains("Not found"));
        c.close().await.unwrap();

        // The same order page answers 404 to another buyer and 200 to its own; a form without its
        // CSRF token changes nothing.
        let base = app.base.clone();
        let web = |email: &'static str| {
            let base = base.clone();
            async move {
            let c = reqwest::Client::builder().cookie_store(true).build().unwrap();
            let res = c
                .post(format!("{base}/login"))
                .header("cookie", "souk_csrf=t")
                .form(&[("email", email), ("password", "correct horse battery"), ("csrf", "t")])
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            c
            }
        };
        let order_page = format!("{}/orders/{}", app.base, order["id"].as_str().unwrap());
        let poor = web("poor@buyer.test").await;
        assert_eq!(poor.get(&order_page).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let rich_web = web("rich@buyer.test").await;
        assert_eq!(rich_web.get(&order_page).send().await.unwrap().status(), StatusCode::OK);
        let forged = rich_web
            .post(format!("{}/products/{product}/buy", app.base))
            .form(&[("plan", plan.as_str()), ("period", "month"), ("periods", "1")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(forged.text().await.unwrap().contains("expired or came from another site"));
        assert_eq!(rich.json("/v1/orders").await["items"].as_array().unwrap().len(), 1);
        assert_eq!(rich.json("/v1/balance").await["balances"][0]["amount"], "401.00");
        app.cleanup().await;
    }
}
