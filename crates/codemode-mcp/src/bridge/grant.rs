//! Grants: what one bearer token may do. Each execution gets its own token with
//! its own allowlist, call budget and rate, and loses it when the execution ends,
//! so a token leaked from one run is worthless in the next.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::approval::{Approval, Approvals, Gate, Question};
use super::wire::{ErrorKind, RpcError};
use codemode_config::ToolFilter;

/// The calls a grant keeps records of. A script can make calls far faster
/// than a report is worth reading, and every record lands in `exec --json`
/// and in `serve`'s answer: 1,000 records are about 350 KB of JSON even at
/// the longest names a record keeps, a third of the default 1 MiB cap on the
/// script's own output, and more calls than a script working as meant makes.
pub const MAX_RECORDS: usize = 1_000;

/// What a grant allows. [`GrantSpec::new`]'s bounds suit one script run.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    /// The tools the run may call: the same filter its stubs were narrowed
    /// with, so that a call is refused exactly when its stub is missing.
    pub filter: ToolFilter,
    /// Calls allowed in the grant's lifetime; `None` is unbounded.
    pub max_calls: Option<u64>,
    /// Sustained calls per second (bursts up to the same number); 0 is unbounded.
    pub calls_per_second: f64,
    /// Calls in flight at once.
    pub max_concurrent: usize,
    /// Which calls wait for a person's yes, and whom to ask.
    pub approvals: Approvals,
}

impl GrantSpec {
    /// A grant for the tools `filter` permits. There is no default filter:
    /// each grant says what it admits, so none admits a tool by omission.
    pub fn new(filter: ToolFilter) -> Self {
        GrantSpec {
            filter,
            max_calls: None,
            calls_per_second: 1000.0,
            max_concurrent: 64,
            approvals: Approvals::none(),
        }
    }
}

#[derive(Default)]
pub struct Grants {
    live: Mutex<Vec<Arc<GrantState>>>,
    next_id: AtomicUsize,
}

pub struct GrantState {
    id: String,
    token: Vec<u8>,
    spec: GrantSpec,
    calls: AtomicU64,
    records: Mutex<Records>,
    bucket: Mutex<Bucket>,
    in_flight: Arc<Semaphore>,
    gate: Gate,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// One call made under a grant, for the execution's report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRecord {
    pub server: String,
    pub tool: String,
    pub ok: bool,
    /// Whether a person was asked, and how it went.
    pub approval: Approval,
    /// The error kind when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub duration_ms: f64,
}

/// The calls made under a grant, in the order they finished: the first
/// [`MAX_RECORDS`], and how many more there were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub kept: Vec<CallRecord>,
    pub dropped: u64,
}

/// A live grant. Dropping it revokes the token.
pub struct Grant {
    state: Arc<GrantState>,
    grants: Weak<Grants>,
}

impl Grants {
    pub fn new() -> Arc<Grants> {
        Arc::new(Grants::default())
    }

    /// A grant with a fresh random 256-bit token.
    pub fn mint(self: &Arc<Self>, spec: GrantSpec) -> Result<Grant, getrandom::Error> {
        Ok(self.insert(random_token()?, spec))
    }

    /// A grant for a token chosen elsewhere (the standalone bridge's
    /// `CODEMODE_BRIDGE_TOKEN`).
    pub fn insert(self: &Arc<Self>, token: String, spec: GrantSpec) -> Grant {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let state = Arc::new(GrantState {
            id: format!("t{n}"),
            token: token.into_bytes(),
            bucket: Mutex::new(Bucket {
                tokens: spec.calls_per_second.max(1.0),
                refilled: Instant::now(),
            }),
            in_flight: Arc::new(Semaphore::new(spec.max_concurrent.max(1))),
            calls: AtomicU64::new(0),
            records: Mutex::new(Records::default()),
            gate: Gate::new(spec.approvals.clone()),
            spec,
        });
        lock(&self.live).push(Arc::clone(&state));
        Grant {
            state,
            grants: Arc::downgrade(self),
        }
    }

    /// The grant the presented token belongs to. Every live token is compared in
    /// constant time, so timing says nothing about how much of a guess was right.
    pub fn authenticate(&self, presented: &[u8]) -> Option<Arc<GrantState>> {
        let live = lock(&self.live);
        let mut found = None;
        for grant in live.iter() {
            if bool::from(grant.token.as_slice().ct_eq(presented)) {
                found = Some(Arc::clone(grant));
            }
        }
        found
    }

    fn revoke(&self, state: &Arc<GrantState>) {
        lock(&self.live).retain(|g| !Arc::ptr_eq(g, state));
    }
}

impl Grant {
    pub fn token(&self) -> String {
        String::from_utf8_lossy(&self.state.token).into_owned()
    }

    /// The calls made under this grant so far.
    pub fn records(&self) -> Records {
        lock(&self.state.records).clone()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(grants) = self.grants.upgrade() {
            grants.revoke(&self.state);
        }
    }
}

impl GrantState {
    /// The token's public name for logs: never the token itself.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Keeps a record of a finished call, or counts it once the list is full.
    pub fn record(&self, record: CallRecord) {
        let mut records = lock(&self.records);
        if records.kept.len() < MAX_RECORDS {
            records.kept.push(record);
        } else {
            records.dropped += 1;
        }
    }

    /// The tools this grant admits.
    pub fn filter(&self) -> &ToolFilter {
        &self.spec.filter
    }

    /// Waits for the call's approval where it needs one.
    pub async fn approve(&self, question: &Question) -> Result<Approval, (Approval, RpcError)> {
        self.gate.pass(question).await
    }

    /// Admits one call under the budget, the rate and the concurrency bound; the
    /// permit holds a concurrency slot until it is dropped.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, RpcError> {
        let permit = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                RpcError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "more than {} calls in flight at once",
                        self.spec.max_concurrent
                    ),
                )
            })?;
        if self.spec.calls_per_second > 0.0 {
            let mut bucket = lock(&self.bucket);
            let now = Instant::now();
            let capacity = self.spec.calls_per_second.max(1.0);
            let earned =
                now.duration_since(bucket.refilled).as_secs_f64() * self.spec.calls_per_second;
            bucket.tokens = (bucket.tokens + earned).min(capacity);
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                return Err(RpcError::new(
                    ErrorKind::RateLimited,
                    format!("more than {} calls per second", self.spec.calls_per_second),
                ));
            }
            bucket.tokens -= 1.0;
        }
        let made = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(max) = self.spec.max_calls {
            if made >= max {
                self.calls.fetch_sub(1, Ordering::Relaxed);
                return Err(RpcError::new(
                    ErrorKind::RateLimited,
                    format!("the budget of {max} tool calls for this execution is spent"),
                ));
            }
        }
        Ok(permit)
    }
}

fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "cm_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_authenticates_until_the_grant_is_dropped() {
        let grants = Grants::new();
        let grant = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        let token = grant.token();
        assert_eq!(token.len(), 3 + 64);
        assert!(grants.authenticate(token.as_bytes()).is_some());
        drop(grant);
        assert!(grants.authenticate(token.as_bytes()).is_none());
    }

    #[test]
    fn a_guessed_or_truncated_token_is_refused() {
        let grants = Grants::new();
        let grant = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        let token = grant.token();
        assert!(grants.authenticate(&token.as_bytes()[..20]).is_none());
        assert!(grants.authenticate(b"cm_0000").is_none());
        assert!(grants.authenticate(b"").is_none());
    }

    #[test]
    fn tokens_are_distinct_per_grant() {
        let grants = Grants::new();
        let a = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        let b = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        assert_ne!(a.token(), b.token());
        let a_state = grants.authenticate(a.token().as_bytes()).unwrap();
        let b_state = grants.authenticate(b.token().as_bytes()).unwrap();
        assert_ne!(a_state.id(), b_state.id());
    }

    #[test]
    fn the_allowlist_matches_server_dot_tool_patterns() {
        let grants = Grants::new();
        let spec = GrantSpec::new(
            ToolFilter::default().narrowed(&["news.fetch_*".into(), "time.*".into()]),
        );
        let grant = grants.mint(spec).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        assert!(state.filter().permits("news", "fetch_latest"));
        assert!(state.filter().permits("time", "convert_time"));
        assert!(!state.filter().permits("news", "search"));
        assert!(!state.filter().permits("git", "git_log"));
    }

    #[test]
    fn the_call_budget_is_enforced() {
        let grants = Grants::new();
        let spec = GrantSpec {
            max_calls: Some(2),
            ..GrantSpec::new(ToolFilter::default())
        };
        let grant = grants.mint(spec).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        assert!(state.admit().is_ok());
        assert!(state.admit().is_ok());
        let err = state.admit().unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(err.message.contains("budget"));
    }

    #[test]
    fn the_rate_is_enforced_with_a_burst_of_its_size() {
        let grants = Grants::new();
        let spec = GrantSpec {
            calls_per_second: 3.0,
            ..GrantSpec::new(ToolFilter::default())
        };
        let grant = grants.mint(spec).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        for _ in 0..3 {
            drop(state.admit().unwrap());
        }
        assert_eq!(state.admit().unwrap_err().kind, ErrorKind::RateLimited);
    }

    #[test]
    fn concurrency_is_bounded_while_permits_are_held() {
        let grants = Grants::new();
        let spec = GrantSpec {
            max_concurrent: 1,
            ..GrantSpec::new(ToolFilter::default())
        };
        let grant = grants.mint(spec).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        let held = state.admit().unwrap();
        assert_eq!(state.admit().unwrap_err().kind, ErrorKind::RateLimited);
        drop(held);
        assert!(state.admit().is_ok());
    }

    fn record(n: usize) -> CallRecord {
        CallRecord {
            server: "news".into(),
            tool: format!("t{n}"),
            ok: true,
            approval: Approval::NotRequired,
            error: None,
            duration_ms: 1.0,
        }
    }

    #[test]
    fn records_past_the_cap_are_counted_not_kept() {
        let grants = Grants::new();
        let grant = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        for n in 0..MAX_RECORDS + 7 {
            state.record(record(n));
        }
        let records = grant.records();
        assert_eq!(records.kept.len(), MAX_RECORDS);
        assert_eq!(records.kept[0], record(0), "the first ones are kept");
        assert_eq!(records.dropped, 7);
    }

    #[test]
    fn an_allowlist_covers_the_servers_its_patterns_can_name() {
        let grants = Grants::new();
        let spec = GrantSpec::new(ToolFilter::default().narrowed(&[
            "news.fetch_*".into(),
            "ti*".into(),
            "git.git_log".into(),
        ]));
        let grant = grants.mint(spec).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        assert!(state.filter().may_reach("news"));
        assert!(state.filter().may_reach("time"));
        assert!(state.filter().may_reach("git"));
        assert!(!state.filter().may_reach("summarizer"));
        assert!(!state.filter().may_reach("new"), "`news.` is not `new.`");
        assert!(!state.filter().may_reach("gi"));
    }

    #[test]
    fn no_allowlist_covers_every_server() {
        let grants = Grants::new();
        let grant = grants.mint(GrantSpec::new(ToolFilter::default())).unwrap();
        let state = grants.authenticate(grant.token().as_bytes()).unwrap();
        assert!(state.filter().may_reach("anything"));
    }
}
