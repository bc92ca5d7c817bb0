//! Metered use: the records sellers report (each counted once, by the seller's record id), and
//! the hourly charges the rater makes of them. A charge claims its records, adds their quantity to
//! the period's total and debits the difference between the rounded cost of the new total and what
//! the period was charged before, all in one transaction.

use crate::decode::{id, int, opt_id, parsed, text, time};
use crate::instances::{instance, Instance, INSTANCE};
use crate::ledger::{self, Movement};
use crate::products::{plan, product, Plan, PLAN, PRODUCT};
use crate::{fresh, ms, placeholders, Backend, Error, Result, Store};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use souk_core::ids::{AccountId, EntryId, InstanceId, MerchantId, PlanId, UsageChargeId};
use souk_core::ledger::EntryKind;
use souk_core::lifecycle::InstanceState;
use souk_core::metering::{self, from_micros, hour_of, to_micros, usage_window, Rejection, Window};
use souk_core::money::{Currency, Money};
use sqlx::AnyConnection;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The most a period's total of one dimension reaches, in millionths: 10^12 units.
const MAX_PERIOD_MICROS: i64 = 1_000_000_000_000_000_000;

/// One usage record as a seller reports it, its fields checked.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub record_id: String,
    pub instance_id: InstanceId,
    pub dimension: String,
    pub quantity: Decimal,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// What became of one reported record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// The seller sent this record id before (or twice in one batch): counted once.
    Duplicate,
    Rejected(Rejection),
}

/// Usage not yet charged, of one instance's dimension in one hour of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrated {
    pub instance_id: InstanceId,
    pub dimension: String,
    pub window_start: DateTime<Utc>,
    pub hour_at: DateTime<Utc>,
}

/// One hourly charge of metered use.
#[derive(Debug, Clone)]
pub struct UsageCharge {
    pub id: UsageChargeId,
    pub instance_id: InstanceId,
    pub buyer_id: AccountId,
    pub merchant_id: MerchantId,
    pub dimension: String,
    pub window_start: DateTime<Utc>,
    pub hour_at: DateTime<Utc>,
    pub quantity: Decimal,
    pub amount: Money,
    pub entry_id: Option<EntryId>,
    pub created_at: DateTime<Utc>,
}

/// A charge just made, with the buyer's balance after it (when it moved money).
#[derive(Debug, Clone)]
pub struct Rated {
    pub charge: UsageCharge,
    pub balance_after: Option<Money>,
}

/// Use of one dimension on one day (UTC), as the buyer and the seller see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    pub instance_id: InstanceId,
    pub dimension: String,
    pub day: DateTime<Utc>,
    pub quantity: Decimal,
    pub amount: Money,
}

/// Where one dimension of an instance stands in its current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodUse {
    pub dimension: String,
    pub window_start: DateTime<Utc>,
    /// Charged so far in the period.
    pub rated: Decimal,
    /// Reported, not yet charged.
    pub pending: Decimal,
    pub charged: Money,
}

const CHARGE: &str = "c.id, c.instance_id, c.buyer_id, c.merchant_id, c.dimension, c.window_start, c.hour_at, c.quantity_micros, \
    c.currency, c.amount_minor, c.entry_id, c.created_at";

fn charge(row: &sqlx::any::AnyRow) -> Result<UsageCharge> {
    let currency: Currency = parsed(row, "currency")?;
    Ok(UsageCharge {
        id: id(row, "id")?,
        instance_id: id(row, "instance_id")?,
        buyer_id: id(row, "buyer_id")?,
        merchant_id: id(row, "merchant_id")?,
        dimension: text(row, "dimension")?,
        window_start: time(row, "window_start")?,
        hour_at: time(row, "hour_at")?,
        quantity: from_micros(int(row, "quantity_micros")?),
        amount: Money::from_minor(int(row, "amount_minor")?, currency),
        entry_id: opt_id(row, "entry_id")?,
        created_at: time(row, "created_at")?,
    })
}

/// A record ready to store: accepted so far, with the period and hour it counts in.
struct Candidate {
    index: usize,
    merchant_record: String,
    instance_id: InstanceId,
    dimension: String,
    micros: i64,
    started_at: i64,
    ended_at: i64,
    window_start: i64,
    hour_at: i64,
    /// Counts against a package quota that refuses use beyond it.
    refusing: bool,
}

/// Rows per multi-row INSERT. PostgreSQL takes a whole batch in one statement (10,000 values,
/// below its 65,535); sqlx's SQLite driver binds large statements slowly, so there a batch goes
/// in statements of 100 rows (measured: 100 rows a statement inserts about ten times faster than
/// 1,000).
fn insert_chunk(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => metering::MAX_BATCH,
        Backend::Sqlite => 100,
    }
}

impl Store {
    /// Records a seller's batch of usage; one outcome per record, in order. Records that failed
    /// their field checks arrive as `Err` and are answered as such. Replays, in one batch or many,
    /// concurrent or not, are counted once (the seller's record id is the key).
    pub async fn record_usage(
        &self,
        merchant_id: &MerchantId,
        records: &[std::result::Result<UsageRecord, Rejection>],
        window: Window,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let mut seen = HashSet::new();
        let mut checked = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match r {
                Err(rejection) => outcomes[i] = Some(Outcome::Rejected(rejection.clone())),
                Ok(r) => match window.check(r.started_at, r.ended_at, now) {
                    Err(rejection) => outcomes[i] = Some(Outcome::Rejected(rejection)),
                    Ok(()) => checked.push((i, r)),
                },
            }
        }
        let instances = self
            .instances_with_plans(checked.iter().map(|(_, r)| &r.instance_id))
            .await?;
        let mut candidates = Vec::with_capacity(checked.len());
        for (i, r) in checked {
            let verdict = match instances.get(&r.instance_id) {
                // Another seller's instance is answered as unknown: the answer must not tell a
                // seller which ids exist.
                None => Err(Rejection::UnknownInstance),
                Some((inst, _)) if &inst.merchant_id != merchant_id => {
                    Err(Rejection::UnknownInstance)
                }
                Some((inst, _)) if inst.state == InstanceState::Failed => {
                    Err(Rejection::InstanceEnded)
                }
                // Use that ended before the release still counts (reported late, within the
                // window); nothing runs after it.
                Some((inst, _))
                    if inst.state == InstanceState::Released && r.ended_at > inst.updated_at =>
                {
                    Err(Rejection::InstanceEnded)
                }
                // Use that was over before the instance was bought was nobody's use of it (a
                // meter's clock may run a little behind souk's). A window that began before and
                // ended after, such as a whole hour, is the instance's use.
                Some((inst, _)) if r.ended_at + window.skew < inst.created_at => {
                    Err(Rejection::BeforeInstance)
                }
                Some((_, plan)) if plan.prices.dimension(&r.dimension).is_none() => {
                    Err(Rejection::UnknownDimension)
                }
                Some((inst, plan)) => Ok((inst, plan)),
            };
            match verdict {
                Err(rejection) => outcomes[i] = Some(Outcome::Rejected(rejection)),
                // A copy of a record this batch already counts; a copy of one it rejected is
                // answered on its own, as nothing was counted for that id.
                Ok(_) if !seen.insert(r.record_id.as_str()) => {
                    outcomes[i] = Some(Outcome::Duplicate)
                }
                Ok((inst, plan)) => {
                    let (window_start, _) = usage_window(inst.created_at, inst.period, r.ended_at);
                    let refusing = plan
                        .prices
                        .dimension(&r.dimension)
                        .is_some_and(|d| d.overage == souk_core::metering::Overage::Refuse);
                    candidates.push(Candidate {
                        index: i,
                        merchant_record: r.record_id.clone(),
                        instance_id: r.instance_id.clone(),
                        dimension: r.dimension.clone(),
                        micros: to_micros(r.quantity),
                        started_at: ms(r.started_at),
                        ended_at: ms(r.ended_at),
                        window_start: ms(window_start),
                        hour_at: ms(hour_of(r.ended_at)),
                        refusing,
                    });
                }
            }
        }

        let mut tx = self.begin().await?;
        // Records that count against a quota the plan refuses to exceed: a replay among them must
        // not use up quota, so their instances are locked (two batches cannot both spend the
        // last of a quota) and then their replays looked up, seeing any batch that committed
        // while we waited. Every other replay is found by the insert itself (its key).
        let quota_bound: Vec<&Candidate> = candidates.iter().filter(|c| c.refusing).collect();
        if self.backend == Backend::Postgres {
            let locks: std::collections::BTreeSet<&InstanceId> =
                quota_bound.iter().map(|c| &c.instance_id).collect();
            for instance_id in locks {
                sqlx::query("SELECT id FROM instances WHERE id = $1 FOR UPDATE")
                    .bind(instance_id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !quota_bound.is_empty() {
            let known = self
                .known_records(&mut tx, merchant_id, &quota_bound)
                .await?;
            candidates.retain(|c| {
                let replay = known.contains(&c.merchant_record);
                if replay {
                    outcomes[c.index] = Some(Outcome::Duplicate);
                }
                !replay
            });
        }
        let over = self.over_quota(&mut tx, &candidates, &instances).await?;
        candidates.retain(|c| {
            let refused = over.contains(&c.index);
            if refused {
                outcomes[c.index] = Some(Outcome::Rejected(Rejection::OverQuota));
            }
            !refused
        });
        // One order for every writer, so concurrent batches that share records never deadlock.
        candidates.sort_by(|a, b| a.merchant_record.cmp(&b.merchant_record));
        for chunk in candidates.chunks(insert_chunk(self.backend)) {
            let rows = (0..chunk.len())
                .map(|k| format!("({})", placeholders(k * 10 + 1, 10)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO usage_records (merchant_id, record_id, instance_id, dimension, quantity_micros, started_at, ended_at, window_start, hour_at, received_at) \
                 VALUES {rows} ON CONFLICT (merchant_id, record_id) DO NOTHING RETURNING record_id"
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for c in chunk {
                q = q
                    .bind(merchant_id.as_str())
                    .bind(c.merchant_record.as_str())
                    .bind(c.instance_id.as_str())
                    .bind(c.dimension.as_str())
                    .bind(c.micros)
                    .bind(c.started_at)
                    .bind(c.ended_at)
                    .bind(c.window_start)
                    .bind(c.hour_at)
                    .bind(ms(now));
            }
            let inserted: HashSet<String> = q.fetch_all(&mut *tx).await?.into_iter().collect();
            for c in chunk {
                outcomes[c.index] = Some(if inserted.contains(&c.merchant_record) {
                    Outcome::Accepted
                } else {
                    // Stored by a concurrent batch since we looked.
                    Outcome::Duplicate
                });
            }
        }
        tx.commit().await?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Duplicate))
            .collect())
    }

    /// The instances named, each with its plan, in two reads.
    async fn instances_with_plans<'a>(
        &self,
        ids: impl Iterator<Item = &'a InstanceId>,
    ) -> Result<HashMap<InstanceId, (Instance, Plan)>> {
        let ids: Vec<&InstanceId> = ids.collect::<HashSet<_>>().into_iter().collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {INSTANCE} FROM instances i WHERE i.id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for i in &ids {
            q = q.bind(i.as_str());
        }
        let instances = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(instance)
            .collect::<Result<Vec<_>>>()?;
        let plan_ids: Vec<&PlanId> = instances
            .iter()
            .map(|i| &i.plan_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut plans = HashMap::new();
        if !plan_ids.is_empty() {
            let sql = format!(
                "SELECT {PLAN} FROM plans pl WHERE pl.id IN ({})",
                placeholders(1, plan_ids.len())
            );
            let mut q = sqlx::query(&sql);
            for p in &plan_ids {
                q = q.bind(p.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                let p = plan(&row)?;
                plans.insert(p.id.clone(), p);
            }
        }
        Ok(instances
            .into_iter()
            .filter_map(|i| {
                let p = plans.get(&i.plan_id)?.clone();
                Some((i.id.clone(), (i, p)))
            })
            .collect())
    }

    /// Which of the candidates' record ids the seller has already reported.
    async fn known_records(
        &self,
        conn: &mut AnyConnection,
        merchant_id: &MerchantId,
        candidates: &[&Candidate],
    ) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in candidates.chunks(insert_chunk(self.backend)) {
            let sql = format!(
                "SELECT record_id FROM usage_records WHERE merchant_id = $1 AND record_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql).bind(merchant_id.as_str());
            for c in chunk {
                q = q.bind(c.merchant_record.as_str());
            }
            known.extend(q.fetch_all(&mut *conn).await?);
        }
        Ok(known)
    }

    /// The candidates (by index) that would take a package past a quota its plan refuses to
    /// exceed, counted in order after what the period already used (the caller holds the locks
    /// of their instances).
    async fn over_quota(
        &self,
        conn: &mut AnyConnection,
        candidates: &[Candidate],
        instances: &HashMap<InstanceId, (Instance, Plan)>,
    ) -> Result<HashSet<usize>> {
        let mut groups: BTreeMap<(&InstanceId, &str, i64), Vec<&Candidate>> = BTreeMap::new();
        for c in candidates {
            if c.refusing {
                groups
                    .entry((&c.instance_id, &c.dimension, c.window_start))
                    .or_default()
                    .push(c);
            }
        }
        let mut over = HashSet::new();
        for ((instance_id, dimension, window_start), group) in groups {
            let Some(dim) = instances
                .get(instance_id)
                .and_then(|(_, p)| p.prices.dimension(dimension))
            else {
                continue;
            };
            let used: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE((SELECT quantity_micros FROM usage_totals WHERE instance_id = $1 AND dimension = $2 AND window_start = $3), 0) \
                 + COALESCE((SELECT SUM(quantity_micros) FROM usage_records WHERE instance_id = $1 AND dimension = $2 AND window_start = $3 AND charge_id IS NULL), 0) AS BIGINT)",
            )
            .bind(instance_id.as_str())
            .bind(dimension)
            .bind(window_start)
            .fetch_one(&mut *conn)
            .await?;
            let mut used = used;
            for c in group {
                if dim.refuses(from_micros(used.saturating_add(c.micros))) {
                    over.insert(c.index);
                } else {
                    used = used.saturating_add(c.micros);
                }
            }
        }
        Ok(over)
    }

    /// Usage reported but not charged, in hours that ended before `before`, oldest first.
    pub async fn unrated_usage(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<Unrated>> {
        sqlx::query(
            "SELECT instance_id, dimension, window_start, hour_at FROM usage_records \
             WHERE charge_id IS NULL AND hour_at < $1 \
             GROUP BY instance_id, dimension, window_start, hour_at ORDER BY hour_at, instance_id, dimension LIMIT $2",
        )
        .bind(ms(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Unrated {
                instance_id: id(row, "instance_id")?,
                dimension: text(row, "dimension")?,
                window_start: time(row, "window_start")?,
                hour_at: time(row, "hour_at")?,
            })
        })
        .collect()
    }

    /// Charges one group of unrated usage; `None` when another rater charged it first. The
    /// charge is debited even past the buyer's floor: the use already happened.
    pub async fn rate_usage(&self, u: &Unrated, now: DateTime<Utc>) -> Result<Option<Rated>> {
        let mut tx = self.begin().await?;
        let charge_id: UsageChargeId = fresh(now);
        let claimed: Vec<i64> = sqlx::query_scalar(
            "UPDATE usage_records SET charge_id = $1 WHERE instance_id = $2 AND dimension = $3 AND window_start = $4 \
             AND hour_at = $5 AND charge_id IS NULL RETURNING quantity_micros",
        )
        .bind(charge_id.as_str())
        .bind(u.instance_id.as_str())
        .bind(&u.dimension)
        .bind(ms(u.window_start))
        .bind(ms(u.hour_at))
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let quantity = claimed.iter().fold(0i64, |a, b| a.saturating_add(*b));
        let inst = sqlx::query(&format!(
            "SELECT {INSTANCE} FROM instances i WHERE i.id = $1"
        ))
        .bind(u.instance_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| instance(&r))
        .transpose()?
        .ok_or(Error::NotFound("instance"))?;
        let plan = sqlx::query(&format!("SELECT {PLAN} FROM plans pl WHERE pl.id = $1"))
            .bind(inst.plan_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| plan(&r))
            .transpose()?
            .ok_or(Error::NotFound("plan"))?;
        // The upsert locks the period's row: raters of one instance's dimension take turns. A
        // period's total stops at MAX_PERIOD_MICROS (10^12 units, far past any real meter), so
        // a runaway meter cannot overflow it and leave its use unchargeable for good.
        let row = sqlx::query(
            "INSERT INTO usage_totals (instance_id, dimension, window_start, quantity_micros, charged_minor) VALUES ($1, $2, $3, $4, 0) \
             ON CONFLICT (instance_id, dimension, window_start) DO UPDATE SET quantity_micros = \
               CASE WHEN usage_totals.quantity_micros > $5 - excluded.quantity_micros THEN $5 \
                    ELSE usage_totals.quantity_micros + excluded.quantity_micros END \
             RETURNING quantity_micros, charged_minor",
        )
        .bind(u.instance_id.as_str())
        .bind(&u.dimension)
        .bind(ms(u.window_start))
        .bind(quantity.min(MAX_PERIOD_MICROS))
        .bind(MAX_PERIOD_MICROS)
        .fetch_one(&mut *tx)
        .await?;
        let (total, charged_before) = (int(&row, "quantity_micros")?, int(&row, "charged_minor")?);
        let currency = plan.prices.currency;
        // A dimension the plan no longer has (changed in a later revision) is not charged.
        let charged_after = match plan.prices.dimension(&u.dimension) {
            Some(d) => d
                .charge_for(from_micros(total), currency)
                .map_err(|e| Error::Corrupt(e.to_string()))?
                .minor
                .max(charged_before),
            None => charged_before,
        };
        let amount = Money::from_minor(charged_after - charged_before, currency);
        let entry = if amount.minor > 0 {
            sqlx::query("UPDATE usage_totals SET charged_minor = $1 WHERE instance_id = $2 AND dimension = $3 AND window_start = $4")
                .bind(charged_after)
                .bind(u.instance_id.as_str())
                .bind(&u.dimension)
                .bind(ms(u.window_start))
                .execute(&mut *tx)
                .await?;
            // The ledger line names what was used, as the buyer knows it.
            let product_name =
                sqlx::query(&format!("SELECT {PRODUCT} FROM products p WHERE p.id = $1"))
                    .bind(inst.product_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| product(&r))
                    .transpose()?
                    .map_or_else(
                        || inst.product_id.to_string(),
                        |p| p.listed_name().to_owned(),
                    );
            let memo = format!(
                "{product_name}: {} {} in the hour from {}",
                from_micros(quantity),
                u.dimension,
                u.hour_at.format("%Y-%m-%d %H:00 UTC")
            );
            let movement = Movement {
                account_id: &inst.buyer_id,
                amount: Money::from_minor(-amount.minor, currency),
                kind: EntryKind::Usage,
                order_id: None,
                reference: Some(charge_id.as_str()),
                memo: &memo,
                created_by: None,
                idempotency_key: None,
                floor_minor: i64::MIN,
                overdraw: true,
            };
            Some(ledger::apply(&mut tx, &movement, now).await?)
        } else {
            None
        };
        let charge = UsageCharge {
            id: charge_id,
            instance_id: inst.id,
            buyer_id: inst.buyer_id,
            merchant_id: inst.merchant_id,
            dimension: u.dimension.clone(),
            window_start: u.window_start,
            hour_at: u.hour_at,
            quantity: from_micros(quantity),
            amount,
            entry_id: entry.as_ref().map(|e| e.id.clone()),
            created_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO usage_charges ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            CHARGE.replace("c.", "")
        ))
        .bind(charge.id.as_str())
        .bind(charge.instance_id.as_str())
        .bind(charge.buyer_id.as_str())
        .bind(charge.merchant_id.as_str())
        .bind(&charge.dimension)
        .bind(ms(charge.window_start))
        .bind(ms(charge.hour_at))
        .bind(quantity)
        .bind(currency.code())
        .bind(amount.minor)
        .bind(charge.entry_id.as_ref().map(EntryId::as_str))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Rated {
            balance_after: entry.map(|e| e.balance_after),
            charge,
        }))
    }

    /// Use per instance, dimension and day (UTC), newest first: one instance's, or every
    /// instance of one merchant's.
    pub async fn usage_days(
        &self,
        instance_id: Option<&InstanceId>,
        merchant_id: Option<&MerchantId>,
        limit: i64,
    ) -> Result<Vec<UsageDay>> {
        // One statement per shape rather than `$1 IS NULL OR …`, which a generic plan can only
        // answer by scanning every charge.
        let (filter, key) = match (instance_id, merchant_id) {
            (Some(i), _) => ("instance_id", i.as_str()),
            (None, Some(m)) => ("merchant_id", m.as_str()),
            (None, None) => return Ok(Vec::new()),
        };
        sqlx::query(&format!(
            "SELECT instance_id, dimension, CAST(hour_at / 86400000 AS BIGINT) AS day, currency, \
             CAST(SUM(quantity_micros) AS BIGINT) AS quantity_micros, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor \
             FROM usage_charges WHERE {filter} = $1 \
             GROUP BY instance_id, dimension, CAST(hour_at / 86400000 AS BIGINT), currency \
             ORDER BY day DESC, instance_id, dimension LIMIT $2"
        ))
        .bind(key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let currency: Currency = parsed(row, "currency")?;
            Ok(UsageDay {
                instance_id: id(row, "instance_id")?,
                dimension: text(row, "dimension")?,
                day: crate::at(int(row, "day")? * 86_400_000),
                quantity: from_micros(int(row, "quantity_micros")?),
                amount: Money::from_minor(int(row, "amount_minor")?, currency),
            })
        })
        .collect()
    }

    /// Where each dimension of an instance stands in the period starting at `window_start`:
    /// charged so far, and reported but not yet charged.
    pub async fn period_use(
        &self,
        instance_id: &InstanceId,
        window_start: DateTime<Utc>,
        currency: Currency,
    ) -> Result<Vec<PeriodUse>> {
        let mut uses: BTreeMap<String, PeriodUse> = BTreeMap::new();
        let blank = |dimension: &str| PeriodUse {
            dimension: dimension.to_owned(),
            window_start,
            rated: Decimal::ZERO,
            pending: Decimal::ZERO,
            charged: Money::from_minor(0, currency),
        };
        // One statement, so one snapshot: read in two, a charge committing in between would
        // show its use as neither pending nor charged (or as both).
        for row in sqlx::query(
            "SELECT dimension, quantity_micros AS rated, charged_minor, 0 AS pending FROM usage_totals \
             WHERE instance_id = $1 AND window_start = $2 \
             UNION ALL \
             SELECT dimension, 0, 0, CAST(SUM(quantity_micros) AS BIGINT) FROM usage_records \
             WHERE instance_id = $1 AND window_start = $2 AND charge_id IS NULL GROUP BY dimension",
        )
        .bind(instance_id.as_str())
        .bind(ms(window_start))
        .fetch_all(&self.pool)
        .await?
        {
            let d = text(&row, "dimension")?;
            let u = uses.entry(d.clone()).or_insert_with(|| blank(&d));
            u.rated += from_micros(int(&row, "rated")?);
            u.pending += from_micros(int(&row, "pending")?);
            u.charged = Money::from_minor(u.charged.minor + int(&row, "charged_minor")?, currency);
        }
        Ok(uses.into_values().collect())
    }

    /// A merchant's reported usage not yet charged, per instance and dimension: (instance,
    /// dimension, records, quantity).
    pub async fn pending_usage(
        &self,
        merchant_id: &MerchantId,
    ) -> Result<Vec<(InstanceId, String, i64, Decimal)>> {
        sqlx::query(
            "SELECT instance_id, dimension, COUNT(*) AS records, CAST(SUM(quantity_micros) AS BIGINT) AS quantity_micros \
             FROM usage_records WHERE merchant_id = $1 AND charge_id IS NULL GROUP BY instance_id, dimension ORDER BY instance_id, dimension",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                id(row, "instance_id")?,
                text(row, "dimension")?,
                int(row, "records")?,
                from_micros(int(row, "quantity_micros")?),
            ))
        })
        .collect()
    }

    /// An instance's usage charges, newest first.
    pub async fn usage_charges(
        &self,
        instance_id: &InstanceId,
        limit: i64,
    ) -> Result<Vec<UsageCharge>> {
        sqlx::query(&format!(
            "SELECT {CHARGE} FROM usage_charges c WHERE c.instance_id = $1 ORDER BY c.hour_at DESC, c.id DESC LIMIT $2"
        ))
        .bind(instance_id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(charge)
        .collect()
    }

    /// Every usage charge whose money is not in the ledger as charged (an entry of kind usage
    /// for exactly the amount), and every usage entry without its charge. Empty when all is well.
    pub async fn usage_mismatches(&self) -> Result<Vec<String>> {
        let charges: Vec<String> = sqlx::query_scalar(
            "SELECT c.id FROM usage_charges c LEFT JOIN ledger_entries e ON e.id = c.entry_id \
             WHERE (c.amount_minor <> 0 OR c.entry_id IS NOT NULL) \
               AND (e.id IS NULL OR e.amount_minor <> 0 - c.amount_minor OR e.kind <> 'usage' OR e.reference <> c.id) \
             UNION ALL \
             SELECT e.id FROM ledger_entries e LEFT JOIN usage_charges c ON c.entry_id = e.id \
             WHERE e.kind = 'usage' AND c.id IS NULL ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(charges)
    }
}
