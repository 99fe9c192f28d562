//! The bundled live demo: the SaaS example log (a service watching its
//! customers' SQL queries) copied into a SQLite database, and a writer that
//! keeps appending plausible events to it, so a newcomer sees live tail,
//! state changes and diffs without any setup.
//!
//! The writer replays the log it starts from into a small model of the
//! domain (users and plans, live applications, recent queries) and draws
//! each new event from that model, so the events are consistent with the
//! state the reducer builds: queries go to applications that exist, plan
//! changes name the plan the user has. About one event in fifty is a query
//! for an application that was deleted, which the reducer rejects, so the
//! demo shows a reducer error now and then, as a real upstream bug would.

use crate::calendar::{civil_from_days, days_from_civil};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The demo log (the bundled `saas.db`) and its reducer, embedded so the
/// binary works from any directory.
pub const DEMO_DB: &[u8] = include_bytes!("../assets/examples/saas.db");
pub const DEMO_REDUCER: &str = include_str!("../assets/examples/saas.jq");
/// How often the writer appends, by default.
pub const DEMO_INTERVAL: Duration = Duration::from_millis(1000);

/// Write the demo log to a new file at `path` (never over an existing one).
pub fn write_demo_db(path: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(DEMO_DB)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Append an event to the demo database every `every` until `stop` is set.
pub fn run_writer(path: &Path, every: Duration, stop: &AtomicBool) -> Result<(), String> {
    let err = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(err)?;
    let mut world = World::from_db(&conn).map_err(err)?;
    while !stop.load(Ordering::SeqCst) {
        sleep_unless_stopped(every, stop);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let ev = world.next_event();
        conn.execute(
            "INSERT INTO events(type, stream, time, data) VALUES (?1, ?2, ?3, ?4)",
            params![ev.ty, ev.stream, ev.time, ev.data.to_string()],
        )
        .map_err(err)?;
    }
    Ok(())
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

/// A writer running on a thread; dropping it stops the writer.
pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Writer {
    pub fn spawn(path: &Path, every: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, flag) = (path.to_path_buf(), stop.clone());
        let handle = std::thread::spawn(move || run_writer(&path, every, &flag));
        Writer {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One event to append.
pub struct NewEvent {
    pub ty: &'static str,
    pub stream: String,
    pub time: String,
    pub data: serde_json::Value,
}

struct User {
    email: String,
    plan: String,
    n: u64,
    apps: usize,
}

struct App {
    id: String,
    owner: String,
    n: u64,
    /// Recent query ids, newest last (the analyser flags one of them).
    recent: Vec<String>,
}

/// What the writer knows of the demo's world.
struct World {
    users: Vec<User>,
    apps: Vec<App>,
    deleted: Vec<(String, u64)>,
    next_query: u64,
    next_user: u64,
    next_app: u64,
    /// Seconds since the Unix epoch of the last event.
    clock: i64,
    rng: u64,
}

const PLANS: [&str; 3] = ["free", "pro", "team"];
const FIRST: [&str; 12] = [
    "Ada", "José", "Zoë", "Søren", "Priya", "Mateo", "Ngozi", "Björn", "Aoife", "Kwame", "Leïla", "Yusuf",
];
const LAST: [&str; 10] = [
    "Lovelace",
    "Álvarez",
    "Müller",
    "Nørgaard",
    "Sharma",
    "Okafor",
    "Haddad",
    "Hopper",
    "Nakamura",
    "Çelik",
];
const APP_NAMES: [&str; 8] = [
    "billing-api",
    "Café Orders",
    "東京 inventory",
    "support-desk",
    "Reporting ✨",
    "crm-lite",
    "payroll",
    "data-export",
];
const TABLES: [&str; 6] = [
    "orders",
    "customers",
    "invoices",
    "products",
    "sessions",
    "payments",
];
const COLUMNS: [&str; 5] = ["id", "status", "created_at", "total", "email"];
const FLAGS: [&str; 4] = ["slow_query", "sql_injection", "reads_credentials", "union_select"];

impl World {
    fn from_db(conn: &Connection) -> rusqlite::Result<World> {
        let mut w = World {
            users: Vec::new(),
            apps: Vec::new(),
            deleted: Vec::new(),
            next_query: 1,
            next_user: 1,
            next_app: 1,
            clock: 0,
            rng: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
                | 1,
        };
        let mut stmt = conn.prepare("SELECT type, stream, time, data FROM events ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let ty: String = row.get(0)?;
            let stream: Option<String> = row.get(1)?;
            let time: Option<String> = row.get(2)?;
            let data: String = row.get(3)?;
            let data: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            if let Some(t) = time.as_deref().and_then(parse_time) {
                w.clock = w.clock.max(t);
            }
            let n = stream
                .as_deref()
                .and_then(|s| s.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            w.replay(&ty, n, &data);
        }
        Ok(w)
    }

    fn replay(&mut self, ty: &str, n: u64, d: &serde_json::Value) {
        let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        match ty {
            "UserSignedUp" => {
                self.next_user = self.next_user.max(n + 1);
                self.users.push(User {
                    email: s("email"),
                    plan: s("plan"),
                    n,
                    apps: 0,
                });
            }
            "PlanChanged" => {
                let email = s("email");
                if let Some(u) = self.users.iter_mut().find(|u| u.email == email) {
                    u.plan = s("to");
                }
            }
            "ApplicationRegistered" => {
                self.next_app = self.next_app.max(n + 1);
                let owner = s("email");
                if let Some(u) = self.users.iter_mut().find(|u| u.email == owner) {
                    u.apps += 1;
                }
                self.apps.push(App {
                    id: s("app_id"),
                    owner,
                    n,
                    recent: Vec::new(),
                });
            }
            "ApplicationDeleted" => {
                let id = s("app_id");
                if let Some(i) = self.apps.iter().position(|a| a.id == id) {
                    let app = self.apps.remove(i);
                    if let Some(u) = self.users.iter_mut().find(|u| u.email == app.owner) {
                        u.apps = u.apps.saturating_sub(1);
                    }
                    self.deleted.push((app.id, app.n));
                }
            }
            "QueryIngested" => {
                let q = s("query_id");
                if let Some(num) = q.strip_prefix("q_").and_then(|x| x.parse::<u64>().ok()) {
                    self.next_query = self.next_query.max(num + 1);
                }
                let id = s("app_id");
                if let Some(a) = self.apps.iter_mut().find(|a| a.id == id) {
                    a.recent.push(q);
                    if a.recent.len() > 8 {
                        a.recent.remove(0);
                    }
                }
            }
            _ => {}
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: plenty for a demo.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rand() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// The next event, drawn from the model and applied to it.
    fn next_event(&mut self) -> NewEvent {
        self.clock += 1 + self.below(45) as i64;
        let time = format_time(self.clock);
        let roll = self.below(100);
        let (ty, stream, data) = if self.users.is_empty() || roll < 6 {
            self.sign_up()
        } else if self.apps.len() < 3 || roll < 12 {
            self.register().unwrap_or_else(|| self.sign_up())
        } else if roll < 17 {
            self.change_plan()
        } else if roll < 19 && self.apps.len() > 5 {
            self.delete_app()
        } else if roll < 21 && !self.deleted.is_empty() {
            // A query for an application that no longer exists: the
            // reducer rejects it, and the demo shows a reducer error.
            let k = self.below(self.deleted.len());
            let (id, n) = self.deleted[k].clone();
            let q = self.query_id();
            let data = serde_json::json!({"app_id": id, "query_id": q, "sql": "SELECT 1", "duration_ms": 1});
            ("QueryIngested", format!("app-{n}"), data)
        } else if roll < 29 {
            self.flag().unwrap_or_else(|| self.query())
        } else {
            self.query()
        };
        NewEvent {
            ty,
            stream,
            time,
            data,
        }
    }

    fn query_id(&mut self) -> String {
        let q = format!("q_{:06}", self.next_query);
        self.next_query += 1;
        q
    }

    fn sign_up(&mut self) -> (&'static str, String, serde_json::Value) {
        let (first, last) = (self.pick(&FIRST), self.pick(&LAST));
        let n = self.next_user;
        self.next_user += 1;
        let local: String = format!("{first}.{last}")
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let email = format!("{local}{n}@example.com");
        let plan = PLANS[[0, 0, 0, 1, 1, 2][self.below(6)]].to_string();
        self.users.push(User {
            email: email.clone(),
            plan: plan.clone(),
            n,
            apps: 0,
        });
        let data = serde_json::json!({"email": email, "name": format!("{first} {last}"), "plan": plan});
        ("UserSignedUp", format!("user-{n}"), data)
    }

    fn register(&mut self) -> Option<(&'static str, String, serde_json::Value)> {
        let candidates: Vec<usize> = (0..self.users.len())
            .filter(|&i| self.users[i].apps < 3)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let u = candidates[self.below(candidates.len())];
        self.users[u].apps += 1;
        let n = self.next_app;
        self.next_app += 1;
        let alphabet: Vec<char> = "abcdefghijkmnpqrstuvwxyz23456789".chars().collect();
        let id: String = std::iter::once("app_".to_string())
            .chain((0..6).map(|_| self.pick(&alphabet).to_string()))
            .collect();
        let owner = self.users[u].email.clone();
        let name = self.pick(&APP_NAMES);
        self.apps.push(App {
            id: id.clone(),
            owner: owner.clone(),
            n,
            recent: Vec::new(),
        });
        let data = serde_json::json!({"email": owner, "app_id": id, "name": name});
        Some(("ApplicationRegistered", format!("app-{n}"), data))
    }

    fn change_plan(&mut self) -> (&'static str, String, serde_json::Value) {
        let u = self.below(self.users.len());
        let from = self.users[u].plan.clone();
        let choices: Vec<&str> = PLANS.iter().copied().filter(|p| *p != from).collect();
        let to = self.pick(&choices).to_string();
        self.users[u].plan = to.clone();
        let user = &self.users[u];
        let data = serde_json::json!({"email": user.email, "from": from, "to": to});
        ("PlanChanged", format!("user-{}", user.n), data)
    }

    fn delete_app(&mut self) -> (&'static str, String, serde_json::Value) {
        let i = self.below(self.apps.len());
        let app = self.apps.remove(i);
        if let Some(u) = self.users.iter_mut().find(|u| u.email == app.owner) {
            u.apps = u.apps.saturating_sub(1);
        }
        let data = serde_json::json!({"email": app.owner, "app_id": app.id});
        self.deleted.push((app.id, app.n));
        ("ApplicationDeleted", format!("app-{}", app.n), data)
    }

    fn query(&mut self) -> (&'static str, String, serde_json::Value) {
        // Recently registered applications are busier.
        let len = self.apps.len();
        let i = len - 1 - self.below(len).min(self.below(len));
        let q = self.query_id();
        let (t, c) = (self.pick(&TABLES), self.pick(&COLUMNS));
        let sql = match self.below(4) {
            0 => format!(
                "SELECT * FROM {t} WHERE {c} = $1 LIMIT {}",
                [10, 20, 50][self.below(3)]
            ),
            1 => format!("UPDATE {t} SET status = $1 WHERE id = $2"),
            2 => format!("INSERT INTO {t} (id, payload) VALUES ($1, $2)"),
            _ => format!("SELECT {c}, count(*) FROM {t} GROUP BY {c} ORDER BY 2 DESC"),
        };
        let ms = 1 + self.below(60) * self.below(8);
        let app = &mut self.apps[i];
        app.recent.push(q.clone());
        if app.recent.len() > 8 {
            app.recent.remove(0);
        }
        let data = serde_json::json!({"app_id": app.id, "query_id": q, "sql": sql, "duration_ms": ms});
        ("QueryIngested", format!("app-{}", app.n), data)
    }

    fn flag(&mut self) -> Option<(&'static str, String, serde_json::Value)> {
        let with_queries: Vec<usize> = (0..self.apps.len())
            .filter(|&i| !self.apps[i].recent.is_empty())
            .collect();
        if with_queries.is_empty() {
            return None;
        }
        let i = with_queries[self.below(with_queries.len())];
        let reason = self.pick(&FLAGS);
        let app = &mut self.apps[i];
        let q = app.recent.remove(0);
        let data = serde_json::json!({"app_id": app.id, "query_id": q, "reason": reason});
        Some(("QueryFlagged", format!("app-{}", app.n), data))
    }
}

/// `2026-01-05T09:06:33Z` → seconds since the epoch.
fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

fn format_time(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        for s in [
            "2026-01-05T09:06:33Z",
            "2000-02-29T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(format_time(parse_time(s).expect("parses")), s);
        }
    }

    #[test]
    fn writer_appends_consistent_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("demo.db");
        write_demo_db(&path).expect("write");
        assert!(write_demo_db(&path).is_err(), "never overwrites");
        let conn = Connection::open(&path).expect("open");
        let mut world = World::from_db(&conn).expect("replay");
        assert!(world.apps.len() > 3 && world.users.len() > 10);
        let start = world.clock;
        for _ in 0..500 {
            let ev = world.next_event();
            assert!(ev.data.is_object());
            if ev.ty == "PlanChanged" {
                assert_ne!(ev.data["from"], ev.data["to"]);
            }
        }
        assert!(world.clock > start);
    }
}
